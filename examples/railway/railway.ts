// Railway Infrastructure as Code for a Node/Prisma app that bandage starts,
// with Prisma migrations applied in Railway's pre-deploy step. Copy it into
// the app's repository as .railway/railway.ts (with `npm install --save-dev
// pg-bandage` done there, and prisma/migrations as `prisma migrate dev`
// writes it), then:
//
//   railway config plan      # shows what would change; changes nothing
//   railway config apply
//
// The API is railway/iac's (railway-ts-sdk, as of 2026-12): defineRailway,
// project, postgres(name) (PostgreSQL 18 with TLS, a self-signed
// certificate), and service(name, {build, preDeploy, start, healthcheck,
// healthcheckTimeout, replicas, env, deploy}). `railway config plan` tells
// when it has moved on. A service is managed by this file or by a
// railway.json (Config as Code), not both: `railway config migrate`
// converts.
//
// `make check-deploy-files` checks the commands' bandage flags, the BANDAGE_*
// variables and the deploy numbers below against bandage itself.
import { defineRailway, postgres, project, service } from "railway/iac";

export default defineRailway((ctx) => {
  const db = postgres("postgres");

  const web = service("web", {
    // Railpack builds the app. Prisma 7 writes the client where
    // schema.prisma's generator says (its `output`); no schema file is needed
    // here, the migrations directory is part of the image.
    build: "npx prisma generate && npm run build",
    // Railway runs this in a separate container of the new image before the
    // new deployment starts (no volumes mounted): bandage waits for the
    // database, applies the pending migrations of prisma/migrations (the
    // directory prisma.config.ts's migrations.path names), each with its
    // _prisma_migrations row, and exits. A failure is not retried: the
    // deployment stops there and the previous one keeps serving.
    // To rebuild the database from the migrations once (a reset that DROPS
    // ALL DATA, then keeps the history: see the README's "Choose a strategy
    // first"), add `--reset once` for one deploy, with
    // BANDAGE_CONFIRM_DATABASE=railway:<identifier> set in that environment's
    // variables (`bandage --plan` prints the identifier).
    preDeploy: "node_modules/.bin/bandage --migrations prisma/migrations",
    // The app, started by bandage: it waits for the database, then runs the
    // app as PID 1. One simple command: Railpack's shell execs it.
    // node_modules/.bin/bandage, not `npx bandage` or `npm start`: npx and
    // npm stay alive in front of what they start.
    start: "node_modules/.bin/bandage -- node dist/index.js",
    // The app's own endpoint. Railway polls it until 200 before switching
    // traffic; the timeout covers bandage's wait for the database (60 s by
    // default) before the app listens.
    healthcheck: "/health",
    healthcheckTimeout: 180,
    replicas: ctx.environment === "production" ? 2 : 1,
    deploy: {
      // SIGTERM, then SIGKILL this many seconds later (Railway's default is
      // 0: no graceful shutdown at all). bandage reads it as
      // RAILWAY_DEPLOYMENT_DRAINING_SECONDS and fits its grace inside it:
      // 9 s for the app, the last second for the exit report.
      drainingSeconds: 10,
      // How long the previous deployment keeps serving once this one is
      // active: it runs against the schema the pre-deploy step migrated, so
      // keep it short (and migrations additive).
      overlapSeconds: 0,
      restartPolicyType: "ON_FAILURE",
    },
    env: {
      DATABASE_URL: db.env.DATABASE_URL,
      // No BANDAGE_CONFIRM_DATABASE here: production only migrates, and a
      // reset that reached it by mistake refuses (exit 77). An environment
      // that resets sets it in its own variables, as railway:<identifier>:
      // every Railway database is named railway, so the name alone would
      // match production's too.
    },
  });

  return project("my-app", {
    resources: [db, web],
  });
});
