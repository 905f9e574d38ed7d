"""Grading a class. checks.py computes the points inside a lesson; answers.py hands in what a check graded;
sandbox.py runs each submission's kernel in bubblewrap, within the limits of sandbox_limits.py;
verify.py re-runs each grade outside the student's kernel; student_edition.py and variant.py
make what students receive.
"""
