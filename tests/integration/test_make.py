"""The Makefile's promise to a fresh machine: `make test` (what CI runs) and
`make run` install the Debian packages, then build.  The pkg-config queries
for the libraries' flags are read when make parses the Makefile; on a fresh
machine that is before the packages exist, so the build must happen in a
second make that parses it again, and a plain `make` without the packages
must say what to do rather than fail at link time with a page of undefined
references.  Simulated with PKG_CONFIG_LIBDIR pointing at an empty folder
(pkg-config then finds no library), with make -n (nothing runs but the
nested makes, which make runs even then)."""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HINT = "run `make deps` first"


def _make(tmp_path, *goals):
    env = dict(os.environ, PKG_CONFIG_LIBDIR=str(tmp_path), PKG_CONFIG_PATH="")
    env.pop("MAKEFLAGS", None)
    env.pop("MAKELEVEL", None)
    return subprocess.run(["make", "-n", "--no-print-directory", *goals], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_plain_make_without_packages_says_make_deps(tmp_path):
    r = _make(tmp_path)
    assert r.returncode != 0
    assert HINT in r.stderr and "jansson" in r.stderr, r.stderr
    assert "gcc" not in r.stdout  # stopped before compiling anything


def test_make_deps_and_build_in_one_make_is_refused(tmp_path):
    r = _make(tmp_path, "deps", "all")
    assert r.returncode != 0 and HINT in r.stderr, r.stderr


def test_make_test_builds_in_a_make_parsed_after_deps(tmp_path):
    """deps' recipe comes first; the build is a nested make whose own parse
    (still without packages here, nothing was installed under -n) reaches
    the check: with the packages installed by deps it would read their flags."""
    for goal, build in (("test", "all unit asan tsan models"), ("run", "all"),
                        ("bench", "all models sim")):
        r = _make(tmp_path, goal)
        out = r.stdout + r.stderr
        assert "dpkg-query" in r.stdout, (goal, out)  # deps' recipe, printed by -n
        assert f"--no-print-directory {build}" in r.stdout, (goal, out)
        assert r.stdout.index("dpkg-query") < r.stdout.index(f"--no-print-directory {build}")
        assert HINT in r.stderr, (goal, out)  # from the nested make's parse
        assert "gcc" not in r.stdout, (goal, out)
