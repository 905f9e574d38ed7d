# The greeter's build configuration (lessons/09): requests from the console, and the page
# tables that keep its stack non-executable; faults reported, with function names.
COMPONENTS := console-input page-tables fault-report symbols
