"""Deterministic record and replay of a guest, and the timeline of its faults and writes.
"""
