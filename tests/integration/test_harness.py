"""The test harness's own promises that tests/run_all.sh relies on: a
gateway that did not exit through its own exit path is marked in its log
(sanitizers check for leaks only at exit, so such a run proves nothing), and
one stopped by SIGTERM is not.  Not in the sanitizer runs: the first test
kills a gateway on purpose."""
import os
import signal

import gwlib


def test_sigkilled_gateway_is_marked_unclean(gw_factory):
    g = gw_factory("killed")
    os.kill(g.proc.pid, signal.SIGKILL)
    g.proc.wait(timeout=10)
    g.kill()
    lines = [l for l in g.log().splitlines() if l.startswith(gwlib.UNCLEAN_EXIT)]
    assert lines == [f"{gwlib.UNCLEAN_EXIT} pid={g.proc.pid} signal=9 (Killed)"], lines
    g.kill()  # marked once, however often it is stopped
    assert g.log().count(gwlib.UNCLEAN_EXIT) == 1


def test_sigterm_exit_is_clean(gw_factory):
    g = gw_factory("stopped")
    g.kill()
    assert g.proc.returncode == 0, g.log()[-2000:]
    assert gwlib.UNCLEAN_EXIT not in g.log()
    assert 'msg="stopped"' in g.log()
