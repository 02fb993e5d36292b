"""The attack harness itself: a gateway starts, a bystander is served, RSS reads."""
import attacklib


def test_bystander_and_rss(gw_factory, model):
    g = gw_factory("smoke")
    rss = attacklib.rss_kb(g.proc.pid)
    assert 1000 < rss < 4_000_000, rss
    with attacklib.Bystander(g, model, max_requests=6, pause=0.0) as b:
        pass
    b.stop()
    attacklib.assert_alive(g)
    b.assert_served(min_requests=1)
