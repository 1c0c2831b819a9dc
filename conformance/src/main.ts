#!/usr/bin/env node
import { runCli } from '@afterlife/core';
import { runConformanceCli } from './cli.ts';

await runCli(runConformanceCli, { name: 'afterlife-conformance' });
