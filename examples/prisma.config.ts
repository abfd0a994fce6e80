// Prisma 7's configuration of the example project (examples/ is laid out as
// an app's repository root: prisma.config.ts beside package.json, the schema
// and the migrations under prisma/). The Prisma CLI finds this file in the
// directory it runs in.
//
// bandage reads none of it: it takes its directory from --migrations and its
// URLs from the environment (DATABASE_URL, and DIRECT_URL when set, whatever
// this file does with them).
import { defineConfig } from "prisma/config";

export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: {
    // What `prisma migrate dev` writes and `prisma migrate deploy` reads, and
    // what to give bandage: `bandage --migrations prisma/migrations`.
    // prisma/migrations is Prisma's default.
    path: "prisma/migrations",
  },
  datasource: {
    // The URL of the CLI's own connections (migrate deploy, migrate status,
    // db push): the direct one when DATABASE_URL goes through a pooler, as
    // DIRECT_URL is bandage's. process.env rather than Prisma's env(), which
    // throws when the variable is missing: the build steps (generate,
    // migrate diff --from-empty) need no database and often have no URL.
    url: process.env.DIRECT_URL ?? process.env.DATABASE_URL,
  },
});
