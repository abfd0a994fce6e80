"""scripts/check-deploy-files.py on the Railway files: the repository's
railpack.json and examples/railway/railway.ts pass, and each mistake a user
could make in a copy of them is caught, with the reason."""
import os
import re
import subprocess

import pytest

from helpers import REPO_ROOT, scaled

CHECK = os.path.join(REPO_ROOT, "scripts", "check-deploy-files.py")
RAILPACK = os.path.join(REPO_ROOT, "railpack.json")
RAILWAY_TS = os.path.join(REPO_ROOT, "examples", "railway", "railway.ts")
START = ("node_modules/.bin/bandage --reset once --schema-file prisma/schema.sql -- "
         "node dist/index.js")


def check(bandage_bin, railpack=RAILPACK, railway_ts=RAILWAY_TS):
    r = subprocess.run(["/usr/bin/python3", CHECK, "--bandage", bandage_bin, "--kubernetes", "",
                        "--railpack", railpack, "--railway-ts", railway_ts],
                       capture_output=True, text=True, timeout=scaled(30))
    return r.returncode, r.stdout + r.stderr


def edited(tmp_path, source, old, new):
    with open(source) as f:
        text = f.read()
    assert old in text, f"{old!r} is not in {source}"
    path = tmp_path / os.path.basename(source)
    path.write_text(text.replace(old, new))
    return str(path)


def test_repository_files_pass(bandage_bin):
    code, out = check(bandage_bin)
    assert code == 0, out
    assert "railpack.json, railway.ts, railway.json, nixpacks.toml" in out
    with open(RAILPACK) as f:
        assert START in f.read()
    with open(RAILWAY_TS) as f:
        assert START in f.read()


@pytest.mark.parametrize("start,problem", [
    ("npx bandage --reset once -- node dist/index.js", "npx stays alive in front of bandage"),
    ("npm exec bandage -- node dist/index.js", "npm stays alive in front of bandage"),
    ("node_modules/.bin/bandage --reset once --schema-file prisma/schema.sql",
     "bandage starts no app"),
    ("node_modules/.bin/bandage --grace-period 5 -- node dist/index.js", "has no flag --grace-period"),
    ("node_modules/.bin/bandage --reset sometimes -- node dist/index.js", "not one of"),
    ("node_modules/.bin/bandage -- node dist/index.js && echo done", "more than one command"),
    ("bandage -- node dist/index.js", "start bandage as node_modules/.bin/bandage"),
    ("node dist/index.js", "no ' -- '"),
])
def test_railpack_start_mistakes(bandage_bin, tmp_path, start, problem):
    path = edited(tmp_path, RAILPACK, START, start)
    # railway.ts keeps the right start: compared too, so it differs
    code, out = check(bandage_bin, railpack=path)
    assert code == 1, out
    assert problem in out
    assert "railpack.json deploy.startCommand" in out


def test_railpack_schema_file_must_be_built(bandage_bin, tmp_path):
    path = edited(tmp_path, RAILPACK, "> prisma/schema.sql", "> prisma/other.sql")
    code, out = check(bandage_bin, railpack=path, railway_ts="")
    assert code == 1 and "no build command writes it" in out, out


def test_railpack_invalid_json(bandage_bin, tmp_path):
    path = edited(tmp_path, RAILPACK, '"deploy": {', '"deploy": {,')
    code, out = check(bandage_bin, railpack=path)
    assert code == 1 and "does not parse" in out, out


@pytest.mark.parametrize("old,new,problem", [
    ("  return project(", "  return project((", "unbalanced '}'"),
    ("  });\n});\n", "  });\n", "'(' is never closed"),
    ("    },\n  });", "    },\n  }));", "unbalanced ')'"),
    (START, "node dist/index.js", "must run bandage with the app after ' -- '"),
    (START, "npx bandage -- node dist/index.js", "npx stays alive"),
    ('BANDAGE_CONFIRM_DATABASE: "railway"', 'BANDAGE_CONFIRM_DB: "railway"',
     "BANDAGE_CONFIRM_DB is not a bandage variable"),
    ('BANDAGE_CONFIRM_DATABASE: "railway",', 'BANDAGE_LOG_LEVEL: "loud",',
     "BANDAGE_LOG_LEVEL 'loud': not one of"),
    ('RAILWAY_DEPLOYMENT_DRAINING_SECONDS: "10"', 'RAILWAY_DEPLOYMENT_DRAINING_SECONDS: "10s"',
     "not a whole number of seconds"),
    ('healthcheck: "/health",', "", "no healthcheck"),
    ("    replicas:", "    copies:", "no replicas"),
    ("--reset once --schema-file", "--reset once --schema-fil",
     "has no flag --schema-fil"),
])
def test_railway_ts_mistakes(bandage_bin, tmp_path, old, new, problem):
    path = edited(tmp_path, RAILWAY_TS, old, new)
    code, out = check(bandage_bin, railway_ts=path)
    assert code == 1, out
    assert problem in out


def test_railway_ts_brackets_in_strings_and_comments_are_not_code(bandage_bin, tmp_path):
    path = edited(tmp_path, RAILWAY_TS, "  const db = postgres(",
                  '  // an unclosed ( { [ in a comment\n  /* and } here */\n'
                  '  const note = "a ) in a string";\n  const db = postgres(')
    code, out = check(bandage_bin, railway_ts=path)
    assert code == 0, out


def test_the_two_start_commands_agree(bandage_bin, tmp_path):
    other = START.replace("--reset once", "--reset always")
    path = edited(tmp_path, RAILWAY_TS, START, other)
    code, out = check(bandage_bin, railway_ts=path)
    assert code == 1, out
    assert re.search(r"start differs from railpack\.json's deploy\.startCommand", out)
