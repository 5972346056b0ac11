"""Tests of the compatibility-test harness."""
