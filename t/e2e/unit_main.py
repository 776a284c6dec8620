#!/usr/bin/env python3
"""Runs one e2e module (or one test) with unittest and prints `E2E-COUNTS passed failed skipped`."""
import sys
import unittest

sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
suite = unittest.defaultTestLoader.loadTestsFromName(sys.argv[1])
result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
bad = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
print("E2E-COUNTS %d %d %d" % (result.testsRun - bad - len(result.skipped), bad, len(result.skipped)), flush=True)
sys.exit(1 if bad else 0)
