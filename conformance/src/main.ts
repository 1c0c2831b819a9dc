#!/usr/bin/env node
import { AfterlifeError, errorMessage } from '@afterlife/core';
import { runConformanceCli } from './cli.ts';

runConformanceCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Client keep-alive sockets and watches must not hold the process open.
    setTimeout(() => process.exit(code), 500).unref();
  },
  (error: unknown) => {
    process.stderr.write(`afterlife-conformance: ${errorMessage(error)}\n`);
    const usage =
      (error instanceof AfterlifeError && error.code === 'USAGE') ||
      (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    process.exitCode = usage ? 2 : 1;
  },
);
