"""What more than one test module uses: polling and processes (procs), git repositories and the
CLI (repos), Celery clusters (cluster), the API server (api), the chaos accounting (chaos) and
the SSH engine (ssh). Test modules import from here and from tests.servers, never from each
other; fixtures live in conftest.py."""
