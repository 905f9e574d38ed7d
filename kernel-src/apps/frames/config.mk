# The build configuration of lesson 11's application, the buffer pool: requests from the console,
# the page tables (its buffers are pages it maps itself) and the heap's region of the address
# space; faults reported, with function names.
COMPONENTS := console-input heap page-tables fault-report symbols
