import { AfterlifeError } from '@afterlife/core';

/** A cluster lifecycle problem that is not a build, port or readiness failure. */
export class AfterlifeClusterError extends AfterlifeError {}
