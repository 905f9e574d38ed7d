"""The unikernel as a student edits and builds it: the source tree (workspace), its components, the
build, and the image it makes.
"""
