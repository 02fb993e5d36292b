"""Fixtures for the attack suite (tests/attack): hostile clients against a
real gateway process, each test bounded in requests and seconds, talking to
127.0.0.1 only.

The integration suite's fixtures (gw_factory, start_gw, model) are reused
as they are; attacklib has what attacks need on top: RSS readings from
/proc, a bystander client that must keep getting 200s while an attack runs,
and counters from /metrics."""
import importlib.util
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
INTEGRATION = HERE.parent / "integration"
sys.path.insert(0, str(INTEGRATION))
sys.path.insert(0, str(HERE))

_spec = importlib.util.spec_from_file_location("igw_integration_conftest",
                                               INTEGRATION / "conftest.py")
_ic = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_ic)

# Everything the integration conftest defines (fixtures, Gateway,
# write_config, MAIN_MAX_BODY, ...) is defined here too: pytest collects
# fixtures by name, and `from conftest import X` in either suite finds X
# whichever conftest module Python imported first.
globals().update({k: v for k, v in vars(_ic).items() if not k.startswith("_")})
