# Two commands on a fresh machine: `make demo` and `make test`. Both create the virtual
# environment first (Python 3.11+ as $(PYTHON)).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_PORT ?= 8000
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: venv demo test test-sqlite migrate serve bench clean i18n chromium test-browser

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=...)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	rm -f $(VENV)/.installed-*
	touch $@

# Migrates the embedded SQLite database (var/engine.db, or DATABASE_URL), loads the demo
# merchant and prints a summary.
demo: venv
	$(BIN)/python app.py demo
	@if [ "$(SERVE)" != "0" ]; then \
		echo "serving the demo merchant at http://127.0.0.1:$(DEMO_PORT)/ (Ctrl-C stops it; SERVE=0 skips this step)"; \
		$(BIN)/python app.py serve --host 127.0.0.1 --port $(DEMO_PORT); \
	fi

# Every database test runs on SQLite and on PostgreSQL (TEST_POSTGRES_URL, default the local
# server); the run fails if PostgreSQL is unreachable. TEST_DATABASES=sqlite to skip it knowingly.
test: venv chromium
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

test-sqlite: venv chromium
	TEST_DATABASES=sqlite $(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

migrate: venv
	$(BIN)/python app.py migrate

serve: venv
	$(BIN)/python app.py serve

bench: venv
	$(BIN)/python bench/api_ingest.py
	$(BIN)/python bench/demo_load.py

# UI strings: extract from the web code and templates (babel.cfg), merge into each language's
# .po; translate the new entries, commit the .po (the .mo is compiled when the app starts).
i18n: venv
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --no-location --sort-output --omit-header -o translations/messages.pot .
	$(BIN)/pybabel update -i translations/messages.pot -d translations --no-fuzzy-matching --ignore-obsolete

# The browser tests (tests/browser, marker "browser") drive Debian's chromium, never a
# downloaded browser build; a CJK font makes the Chinese screenshots readable. Installed here
# when missing (root, as on CI); without chromium the browser tests fail, they never skip.
chromium:
	@command -v chromium >/dev/null 2>&1 && fc-list :lang=zh | grep -q . || { apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-wqy-microhei; }

test-browser: venv chromium
	$(BIN)/python -m pytest -m browser $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var/*.db var/*.db-* .pytest_cache
