"""scripts/check-deploy-files.py on the Railway files: the repository's
railpack.json, railway.json (Config as Code), nixpacks.toml (deprecated) and
examples/railway/railway.ts (Infrastructure as Code) pass, and each mistake a
user could make in a copy of them is caught, with the reason: a flag bandage
does not have, a number written as a string (Railway's parser refuses the
deploy), a builder or restart policy Railway does not know, a pre-deploy
bandage that would run the app."""
import os
import re
import subprocess

import pytest

from helpers import REPO_ROOT, scaled

CHECK = os.path.join(REPO_ROOT, "scripts", "check-deploy-files.py")
RAILPACK = os.path.join(REPO_ROOT, "railpack.json")
RAILWAY_TS = os.path.join(REPO_ROOT, "examples", "railway", "railway.ts")
RAILWAY_JSON = os.path.join(REPO_ROOT, "railway.json")
NIXPACKS = os.path.join(REPO_ROOT, "nixpacks.toml")
#: railpack.json, railway.json and nixpacks.toml: a reset per deploy.
START = ("node_modules/.bin/bandage --reset once --schema-file prisma/schema.sql -- "
         "node dist/index.js")
#: railway.ts: migrations in the pre-deploy step, then the app under bandage.
TS_PREDEPLOY = "node_modules/.bin/bandage --migrations prisma/migrations"
TS_START = "node_modules/.bin/bandage -- node dist/index.js"
#: railway.ts's env: the line after which a mistaken variable is added.
ENV_LINE = "DATABASE_URL: db.env.DATABASE_URL,"


def check(bandage_bin, railpack=RAILPACK, railway_ts=RAILWAY_TS, railway=RAILWAY_JSON):
    r = subprocess.run(["/usr/bin/python3", CHECK, "--bandage", bandage_bin, "--kubernetes", "",
                        "--railpack", railpack, "--railway-ts", railway_ts, railway, NIXPACKS],
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
    with open(RAILWAY_JSON) as f:
        assert START in f.read()
    with open(RAILWAY_TS) as f:
        text = f.read()
    assert f'preDeploy: "{TS_PREDEPLOY}"' in text and f'start: "{TS_START}"' in text


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
    # railway.json keeps the right start: compared too, so it differs
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
    (TS_START, "node dist/index.js", "must run bandage with the app after ' -- '"),
    (TS_START, "npx bandage -- node dist/index.js", "npx stays alive"),
    (TS_PREDEPLOY, TS_PREDEPLOY + " -- node dist/index.js",
     "a pre-deploy or init bandage must not run the app"),
    (TS_PREDEPLOY, "npx bandage --migrations prisma/migrations", "npx stays alive"),
    ("--migrations prisma/migrations", "--migration prisma/migrations",
     "has no flag --migration"),
    (f'preDeploy: "{TS_PREDEPLOY}"', f'preDeploy: ["{TS_PREDEPLOY}", "bandage --plan"]',
     "start bandage as node_modules/.bin/bandage"),
    (ENV_LINE, ENV_LINE + '\n      BANDAGE_CONFIRM_DB: "railway",',
     "BANDAGE_CONFIRM_DB is not a bandage variable"),
    (ENV_LINE, ENV_LINE + '\n      BANDAGE_LOG_LEVEL: "loud",',
     "BANDAGE_LOG_LEVEL 'loud': not one of"),
    ("drainingSeconds: 10,", 'drainingSeconds: "10",', "must be a number, not str"),
    ("overlapSeconds: 0,", "overlapSeconds: 1.5,", "not a whole number"),
    ("      drainingSeconds: 10,\n", "", "no deploy: {drainingSeconds}"),
    ('restartPolicyType: "ON_FAILURE"', 'restartPolicyType: "SOMETIMES"', "not one of"),
    ('healthcheck: "/health",', "", "no healthcheck"),
    ("    replicas:", "    copies:", "no replicas"),
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


def test_the_start_commands_agree(bandage_bin, tmp_path):
    """railway.json's start wins over railpack.json's on Railway: two would mislead."""
    other = START.replace("--reset once", "--reset always")
    path = edited(tmp_path, RAILPACK, START, other)
    code, out = check(bandage_bin, railpack=path)
    assert code == 1, out
    assert re.search(r"start differs from railway\.json's deploy\.startCommand", out)


def test_railway_ts_predeploy_is_checked_as_a_command(bandage_bin, tmp_path):
    path = edited(tmp_path, RAILWAY_TS, TS_PREDEPLOY, TS_PREDEPLOY + " --reset sometimes")
    code, out = check(bandage_bin, railway_ts=path)
    assert code == 1 and "railway.ts preDeploy[0]" in out and "not one of" in out, out


@pytest.mark.parametrize("old,new,problem", [
    ('"builder": "RAILPACK"', '"builder": "NIXPACKS"', "Nixpacks is deprecated"),
    ('"builder": "RAILPACK"', '"builder": "HEROKU"', "not one of"),
    ('"drainingSeconds": 10', '"drainingSeconds": "10"', "must be a number, not str"),
    ('"overlapSeconds": 0', '"overlapSeconds": true', "must be a number, not bool"),
    ('"healthcheckTimeout": 180', '"healthcheckTimeout": -1', "not a whole number"),
    ('"restartPolicyMaxRetries": 10', '"restartPolicyMaxRetries": "10"', "must be a number"),
    (',\n    "drainingSeconds": 10', "", "no deploy.drainingSeconds"),
    ('"restartPolicyType": "ON_FAILURE"', '"restartPolicyType": "on_failure"', "not one of"),
    ('"deploy": {', '"deploy": {\n    "preDeployCommand": ["node_modules/.bin/bandage '
                   '--migrations prisma/migrations -- node dist/index.js"],',
     "a pre-deploy or init bandage must not run the app"),
    ('"deploy": {', '"deploy": {\n    "preDeployCommand": "node_modules/.bin/bandage '
                   '--migrate prisma/migrations",', "has no flag --migrate"),
    ('"deploy": {', '"deploy": {\n    "preDeployCommand": [["nested"]],',
     "not a list of commands"),
])
def test_railway_json_mistakes(bandage_bin, tmp_path, old, new, problem):
    path = edited(tmp_path, RAILWAY_JSON, old, new)
    code, out = check(bandage_bin, railway=path)
    assert code == 1, out
    assert problem in out


def test_railway_json_predeploy_migrations_pass(bandage_bin, tmp_path):
    """The strategy of railway.ts, written as Config as Code: accepted."""
    path = edited(tmp_path, RAILWAY_JSON, '"deploy": {',
                  '"deploy": {\n    "preDeployCommand": ["node_modules/.bin/bandage '
                  '--migrations prisma/migrations"],')
    code, out = check(bandage_bin, railway=path)
    assert code == 0, out
