import { errorMessage, isRecord } from '@afterlife/core';
import { type AdmissionRequest, type AdmitContext, admit, type JsonPatchOperation } from './admit.ts';
import { WebhookError } from './errors.ts';

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

export interface AdmissionStatus {
  status: 'Failure';
  code: number;
  reason: string;
  message: string;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  patchType?: 'JSONPatch';
  patch?: string;
  warnings?: string[];
  status?: AdmissionStatus;
}

export interface AdmissionReviewResponse {
  apiVersion: typeof ADMISSION_API_VERSION;
  kind: 'AdmissionReview';
  response: AdmissionResponse;
}

/**
 * `mutated` / `unchanged` / `skipped`: allowed (see `AdmitOutcome`); `denied`: opted in but cannot
 * be made to work; `invalid`: the request itself is unusable; `timeout`: no answer in time;
 * `error`: the webhook failed.
 */
export type AdmissionOutcome = 'mutated' | 'unchanged' | 'skipped' | 'denied' | 'invalid' | 'timeout' | 'error';

/** One HTTP answer to one request to /mutate. */
export interface ReviewAnswer {
  /** 200 for every AdmissionReview answer; 4xx/5xx only when no answer can carry a uid. */
  readonly httpStatus: number;
  readonly body: AdmissionReviewResponse | { readonly error: string };
  readonly outcome: AdmissionOutcome;
  /** Short machine-friendly reason for logs and metrics. */
  readonly reason: string;
  /** The patch operations (also base64-encoded in the body). */
  readonly patch: readonly JsonPatchOperation[];
  /** What went wrong, for `error` (logged by the HTTP layer). */
  readonly error?: unknown;
}

function envelope(response: AdmissionResponse): AdmissionReviewResponse {
  return { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response };
}

/** The request uid, when the body has one (even in an otherwise unusable review). */
export function reviewUid(body: unknown): string | undefined {
  const request = isRecord(body) ? body.request : undefined;
  const uid = isRecord(request) ? request.uid : undefined;
  return typeof uid === 'string' && uid !== '' ? uid : undefined;
}

/** Checks the AdmissionReview v1 envelope and returns its request; throws `REVIEW_INVALID`. */
export function decodeReview(body: unknown): AdmissionRequest {
  const invalid = (reason: string, message: string) => new WebhookError('REVIEW_INVALID', message, { reason });
  if (!isRecord(body)) throw invalid('not-an-object', 'the body must be a JSON AdmissionReview object');
  if (body.apiVersion !== ADMISSION_API_VERSION || body.kind !== 'AdmissionReview') {
    throw invalid(
      'wrong-version',
      `expected apiVersion ${ADMISSION_API_VERSION} kind AdmissionReview, got apiVersion ${JSON.stringify(body.apiVersion ?? null)} kind ${JSON.stringify(body.kind ?? null)}; register this webhook with admissionReviewVersions: ["v1"]`,
    );
  }
  if (!isRecord(body.request)) throw invalid('missing-request', 'AdmissionReview has no request object');
  if (reviewUid(body) === undefined) throw invalid('missing-uid', 'AdmissionReview request has no uid');
  return body.request;
}

const FAILURE: Record<
  'denied' | 'invalid' | 'timeout' | 'error',
  { readonly code: number; readonly reason: string; readonly withoutUid: number }
> = {
  denied: { code: 403, reason: 'Forbidden', withoutUid: 400 },
  invalid: { code: 400, reason: 'BadRequest', withoutUid: 400 },
  timeout: { code: 504, reason: 'Timeout', withoutUid: 503 },
  error: { code: 500, reason: 'InternalError', withoutUid: 500 },
};

/**
 * The one mapping from an error to an answer: a denial, a bad request, a timeout or an internal
 * error becomes `allowed: false` with a Status (echoing `uid`), or a plain HTTP error when there
 * is no uid to echo.
 */
export function errorAnswer(uid: string | undefined, error: unknown): ReviewAnswer {
  const known = error instanceof WebhookError ? error : undefined;
  const outcome =
    known === undefined
      ? 'error'
      : known.code === 'ADMISSION_DENIED'
        ? 'denied'
        : known.code === 'ADMISSION_TIMEOUT'
          ? 'timeout'
          : known.code === 'REVIEW_INVALID' || known.code.startsWith('BODY_')
            ? 'invalid'
            : 'error';
  const failure = FAILURE[outcome];
  const message =
    outcome === 'error' ? `afterlife webhook internal error: ${errorMessage(error)}` : errorMessage(error);
  const reason = known?.reason ?? 'internal';
  const answer = { outcome, reason, patch: [], ...(outcome === 'error' ? { error } : {}) } as const;
  if (uid === undefined || known?.code.startsWith('BODY_')) {
    const body = { error: outcome === 'error' ? 'internal error' : message };
    return { ...answer, httpStatus: known?.httpStatus ?? failure.withoutUid, body };
  }
  const status: AdmissionStatus = { status: 'Failure', code: failure.code, reason: failure.reason, message };
  return { ...answer, httpStatus: 200, body: envelope({ uid, allowed: false, status }) };
}

/**
 * Answers one AdmissionReview (the envelope around `admit`): decodes it, runs the policy (bounded
 * by `timeoutMs` when given), echoes the uid and maps every error through `errorAnswer`.
 */
export async function answerReview(
  body: unknown,
  context: AdmitContext,
  options: { readonly timeoutMs?: number } = {},
): Promise<ReviewAnswer> {
  const uid = reviewUid(body);
  let timer: NodeJS.Timeout | undefined;
  try {
    const request = decodeReview(body);
    const admitted = admit(request, context);
    const { timeoutMs } = options;
    const result =
      timeoutMs === undefined
        ? await admitted
        : await Promise.race([
            admitted,
            new Promise<never>((_resolve, reject) => {
              timer = setTimeout(
                () =>
                  reject(
                    new WebhookError('ADMISSION_TIMEOUT', `afterlife webhook timed out after ${timeoutMs} ms`, {
                      reason: 'timeout',
                    }),
                  ),
                timeoutMs,
              );
            }),
          ]);
    const { allowed, warnings, patch, patchType } = result.response;
    const response: AdmissionResponse = {
      uid: uid ?? '',
      allowed,
      ...(patchType === undefined ? {} : { patchType }),
      ...(patch === undefined ? {} : { patch }),
      ...(warnings === undefined ? {} : { warnings: [...warnings] }),
    };
    return {
      httpStatus: 200,
      body: envelope(response),
      outcome: result.outcome,
      reason: result.reason,
      patch: result.patch,
    };
  } catch (error) {
    return errorAnswer(uid, error);
  } finally {
    clearTimeout(timer);
  }
}
