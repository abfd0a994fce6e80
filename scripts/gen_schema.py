#!/usr/bin/env python3
"""Prints a Prisma-style schema of N models, as `prisma migrate diff
--from-empty --to-schema-datamodel ... --script` writes it: enums first, then
tables, then indexes, then foreign keys. Used by the scale tests and bench/.

usage: gen_schema.py N [--prefix P] [--fail-last]
  --prefix P   name models P0, P1, ... (default Model)
  --fail-last  end with a statement that fails (undefined table), to test
               that a failed apply leaves the old schema in place
"""
import argparse
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("--prefix", default="Model")
    ap.add_argument("--fail-last", action="store_true")
    a = ap.parse_args()
    out = sys.stdout
    p = a.prefix
    for i in range(a.n):
        out.write(f"-- CreateEnum\nCREATE TYPE \"{p}{i}Status\" AS ENUM ('ACTIVE', 'INACTIVE', 'BANNED');\n\n")
    for i in range(a.n):
        out.write(
            f"-- CreateTable\nCREATE TABLE \"{p}{i}\" (\n"
            f"    \"id\" SERIAL NOT NULL,\n"
            f"    \"email\" TEXT NOT NULL,\n"
            f"    \"status\" \"{p}{i}Status\" NOT NULL DEFAULT 'ACTIVE',\n"
            f"    \"parentId\" INTEGER,\n"
            f"    \"createdAt\" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,\n\n"
            f"    CONSTRAINT \"{p}{i}_pkey\" PRIMARY KEY (\"id\")\n);\n\n")
    for i in range(a.n):
        out.write(f"-- CreateIndex\nCREATE UNIQUE INDEX \"{p}{i}_email_key\" ON \"{p}{i}\"(\"email\");\n\n")
    for i in range(1, a.n):
        out.write(
            f"-- AddForeignKey\nALTER TABLE \"{p}{i}\" ADD CONSTRAINT \"{p}{i}_parentId_fkey\" "
            f"FOREIGN KEY (\"parentId\") REFERENCES \"{p}{i - 1}\"(\"id\") "
            f"ON DELETE SET NULL ON UPDATE CASCADE;\n\n")
    if a.fail_last:
        out.write("-- Fails: the table does not exist\nALTER TABLE \"NoSuchModel\" ADD COLUMN \"x\" INTEGER;\n")


if __name__ == "__main__":
    main()
