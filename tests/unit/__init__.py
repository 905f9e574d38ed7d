"""Tests of one module at a time, without QEMU: tests/unit/conftest.py fails a test here that starts one."""
