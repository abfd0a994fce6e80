// Railway Infrastructure as Code for a Node/Prisma app that bandage starts.
// Copy it into the app's repository as .railway/railway.ts (with
// `npm install --save-dev pg-bandage` done there), then:
//
//   railway config plan      # shows what would change; changes nothing
//   railway config apply
//
// The API is the one documented at docs.railway.com/infrastructure-as-code/
// reference as of 2026-12: defineRailway, project, service(name, {build,
// start, healthcheck, healthcheckTimeout, replicas, env}), postgres(name) and
// db.env.DATABASE_URL. It is young and may change: `railway config plan`
// tells. Two things that reference does not show, so this file does not
// guess them: a restart-policy field (the service's setting applies; On
// Failure is Railway's default) and a draining-time field (set below as the
// RAILWAY_DEPLOYMENT_DRAINING_SECONDS service variable, which Railway reads).
// A service managed by railway.json/railway.toml must be migrated first
// (railway config plan says which).
//
// `make check-deploy-files` checks the start command's bandage flags and the
// BANDAGE_* variables below against bandage itself.
import { defineRailway, postgres, project, service } from "railway/iac";

export default defineRailway((ctx) => {
  const db = postgres("postgres");

  const web = service("web", {
    // Railpack builds the app; the schema file is made here, at build time,
    // so no Prisma CLI runs at deploy time (the same as railpack.json).
    build:
      "npm run build && npx prisma migrate diff --from-empty --to-schema-datamodel prisma/schema.prisma --script > prisma/schema.sql",
    // One simple command: Railpack's shell execs it, so bandage is PID 1.
    // node_modules/.bin/bandage, not `npx bandage` or `npm start`: npx and
    // npm stay alive in front of what they start. --reset once takes the
    // deployment id from RAILWAY_DEPLOYMENT_ID, so a crash restart of the
    // same deploy, and its other replicas, never reset again.
    start:
      "node_modules/.bin/bandage --reset once --schema-file prisma/schema.sql -- node dist/index.js",
    // The app's own endpoint. Railway polls it until 200 before switching
    // traffic; the timeout covers bandage's wait for the database (60 s by
    // default) and the reset before the app listens.
    healthcheck: "/health",
    healthcheckTimeout: 180,
    // Replicas queue on bandage's advisory lock; the first resets, the
    // others find the deploy's marker and skip.
    replicas: ctx.environment === "production" ? 2 : 1,
    env: {
      DATABASE_URL: db.env.DATABASE_URL,
      // A reset runs only when this is the connected database's name.
      BANDAGE_CONFIRM_DATABASE: "railway",
      // SIGTERM, then SIGKILL this many seconds later (Railway's default is
      // 0: no graceful shutdown at all). bandage fits its grace inside it:
      // 9 s for the app, the last second for the exit report.
      RAILWAY_DEPLOYMENT_DRAINING_SECONDS: "10",
    },
  });

  return project("my-app", {
    resources: [db, web],
  });
});
