# The application's build configuration: the kernel components it is built with (the menu is
# in ../components.mk). Its code uses the optional ones under #if COMPONENT_..., so it also
# builds with fewer: make COMPONENTS="console-input" gives a smaller image that serves fewer
# requests, and make COMPONENTS= one that only says hello.
COMPONENTS := console-input timer heap page-tables fault-report symbols syscall scenarios
