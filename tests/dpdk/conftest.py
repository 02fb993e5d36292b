"""The DPDK fast-path suite (tests/dpdk): run by `make test` (suite `dpdk`
of tests/run_all.sh); every test skips, with the reason, where the binary
lacks DPDK or the host lacks what a test needs."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
