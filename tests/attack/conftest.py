"""Fixtures for the attack suite (tests/attack): hostile clients against a
real gateway process, each test bounded in requests and seconds, talking to
127.0.0.1 only.

The integration suite's fixtures (gw_factory, start_gw, model) are reused
as they are; attacklib has what attacks need on top: RSS readings from
/proc, a bystander client that must keep getting 200s while an attack runs,
and counters from /metrics."""
import importlib.util
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


import pytest  # noqa: E402


@pytest.fixture(scope="module")
def module_gw(tmp_path_factory):
    """get(name, **conf): one gateway per module and name, shared by the
    module's tests to save start-ups.  When an earlier attack killed it, the
    next get() reports that in the log and starts a fresh one, so one crash
    fails one test, not every test after it."""
    tmp = tmp_path_factory.mktemp("attack-gw")
    gws = {}
    starts = [0]

    def get(name="atk", **conf):
        g = gws.get(name)
        if g is not None and g.alive():
            return g
        starts[0] += 1
        g = _ic.Gateway(tmp, f"{name}{starts[0]}", **conf)
        g.start()
        gws[name] = g
        return g

    yield get
    for g in gws.values():
        g.kill()
