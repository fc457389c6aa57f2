"""Other mail servers started by the tests and benchmarks as peers of ours (Postfix)."""
