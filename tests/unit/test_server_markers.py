"""The `postgres` and `scylla` markers follow the fixtures a test uses, including the backend a parametrised
fixture is given, so `pytest -m "not scylla"` never sets up a CQL fixture (run here on a small suite of
stand-in fixtures that fail if a server fixture is set up when it should not be)."""

from __future__ import annotations

import pytest

CONFTEST = '''
import pytest

from tests.fixtures.markers import MARKERS, mark_items


def pytest_configure(config):
    for name, description in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")
    config.addinivalue_line("markers", "cluster: the two-node cluster")


def pytest_collection_modifyitems(config, items):
    mark_items(items)


def pytest_collection_finish(session):
    for item in session.items:
        servers = [name for name in ("postgres", "scylla") if item.get_closest_marker(name)]
        print("SERVERS", item.name, ",".join(servers) or "-")


@pytest.fixture(scope="session")
def postgres_dsn():
    return "postgresql://stand-in"


@pytest.fixture
def pool(postgres_dsn):
    return object()


@pytest.fixture(scope="session")
def cql_node():
    raise AssertionError("a CQL fixture was set up")


@pytest.fixture(scope="session")
def cql_session(cql_node):
    return object()


@pytest.fixture(scope="session")
def cql_keyspace(cql_node):
    return "ks"


@pytest.fixture(scope="session")
def spare_cql_node():
    raise AssertionError("a CQL node of the test's own was started")


@pytest.fixture(params=["postgres", "scylla", "memory"])
def world(request, pool):
    """As tests/contract/conftest.py: the CQL fixtures are asked for at run time, for scylla only."""
    if request.param == "scylla":
        request.getfixturevalue("cql_session")
    return request.param


@pytest.fixture(params=["postgres", "scylla"])
def harness(request, postgres_dsn):
    """As tests/cogs/conftest.py."""
    if request.param == "scylla":
        request.getfixturevalue("cql_node")
    return request.param


@pytest.fixture
def on_world(world):
    return world
'''

TESTS = """
import pytest


def test_pure():
    pass


def test_spare(spare_cql_node):
    pass


@pytest.mark.parametrize("backend", ["postgres", "scylla"])
def test_names_a_backend(backend):
    pass


def test_pool(pool):
    pass


def test_cql(cql_session):
    pass


def test_pool_and_keyspace(pool, cql_keyspace):
    pass


def test_world(world):
    pass


def test_through_another_fixture(on_world):
    pass


@pytest.mark.parametrize("harness", ["postgres"], indirect=True)
def test_postgres_only(harness):
    pass


@pytest.mark.parametrize("harness", ["scylla"], indirect=["harness"])
def test_scylla_only(harness):
    pass


def test_harness(harness):
    pass


@pytest.mark.cluster
def test_cluster():
    pass
"""

SERVERS = {
    "test_pure": "-",
    "test_names_a_backend[postgres]": "-",  # parametrised directly: only a name, no server
    "test_names_a_backend[scylla]": "-",
    "test_pool": "postgres",
    "test_cql": "scylla",
    "test_pool_and_keyspace": "postgres,scylla",
    "test_world[postgres]": "postgres",
    "test_world[scylla]": "postgres,scylla",
    "test_world[memory]": "postgres",
    "test_through_another_fixture[postgres]": "postgres",
    "test_through_another_fixture[scylla]": "postgres,scylla",
    "test_through_another_fixture[memory]": "postgres",
    "test_postgres_only[postgres]": "postgres",
    "test_scylla_only[scylla]": "postgres,scylla",
    "test_harness[postgres]": "postgres",
    "test_harness[scylla]": "postgres,scylla",
    "test_cluster": "scylla",
    "test_spare": "scylla",
}


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=TESTS)
    return pytester


def servers(suite: pytest.Pytester) -> dict[str, str]:
    result = suite.runpytest_inprocess("--strict-markers", "-p", "no:cacheprovider", "--co", "-q", "-s")
    assert result.ret == 0, result.stdout.str()
    return dict(line.split()[1:] for line in result.outlines if line.startswith("SERVERS "))


def test_each_test_is_marked_with_the_servers_it_needs(suite: pytest.Pytester) -> None:
    assert servers(suite) == SERVERS


def test_not_scylla_runs_without_setting_up_a_cql_fixture(suite: pytest.Pytester) -> None:
    result = suite.runpytest_inprocess("--strict-markers", "-p", "no:cacheprovider", "-q", "-m", "not scylla")
    scylla = [name for name, needs in SERVERS.items() if "scylla" in needs]
    result.assert_outcomes(passed=len(SERVERS) - len(scylla), deselected=len(scylla))


def test_the_tests_that_start_cql_nodes_of_their_own_are_marked_to_run_apart(suite: pytest.Pytester) -> None:
    """`make test` runs these after the parallel run, in one process: they share fixed ports."""
    result = suite.runpytest_inprocess(
        "--strict-markers", "-p", "no:cacheprovider", "--co", "-q", "-m", "own_cql_nodes"
    )
    assert [line.split("::")[-1] for line in result.outlines if "::" in line] == ["test_spare"]
    rest = suite.runpytest_inprocess(
        "--strict-markers", "-p", "no:cacheprovider", "--co", "-q", "-m", "not own_cql_nodes"
    )
    assert "test_spare" not in rest.stdout.str() and "test_pure" in rest.stdout.str()
