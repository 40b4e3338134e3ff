"""Test peers that Nuri's tests and benchmarks run as real processes on 127.0.0.1."""
