/**
 * Names on the wire: subjects, streams, and consumers (buckets: buckets.ts). The protocol version is part of
 * every subject, so a v2 coordinator and a v1 worker never share a queue; the envelope carries
 * it again so a mismatch that does slip through fails loudly instead of mis-decoding.
 */
import { ProtocolError } from "./errors.js";

export const PROTOCOL_VERSION = 1;

/** Root of every subject: `mergeloom.v1`. */
export const SUBJECT_ROOT = `mergeloom.v${PROTOCOL_VERSION}`;

export const subjects = {
  /** Work queue of merge tasks; one durable consumer shared by every worker. */
  taskMerge: `${SUBJECT_ROOT}.task.merge`,
  /** Work queue of candidate evaluations (evolutionary search); one durable consumer shared by every worker. */
  taskEvaluate: `${SUBJECT_ROOT}.task.evaluate`,
  /**
   * Work queue of candidate evaluations that need the named worker-side scorer: only workers
   * started with that scorer consume it (one durable consumer per scorer name), so a worker
   * without it never takes the task.
   */
  taskScore: (scorer: string): string => `${SUBJECT_ROOT}.task.score.${subjectToken(scorer)}`,
  /** Every task subject (the task stream captures these). */
  taskAll: `${SUBJECT_ROOT}.task.>`,
  /** Results and error reports of one job, replayable by a restarted coordinator. */
  result: (jobId: string): string => `${SUBJECT_ROOT}.result.${subjectToken(jobId)}`,
  resultAll: `${SUBJECT_ROOT}.result.>`,
  /** Progress / lifecycle events of one job (cancel requests, worker notices). */
  event: (jobId: string): string => `${SUBJECT_ROOT}.event.${subjectToken(jobId)}`,
  eventAll: `${SUBJECT_ROOT}.event.>`,
} as const;

/** JetStream stream names (the transport prefixes them per deployment/test). */
export const streams = {
  /** Work-queue retention: a task is removed once acked or terminated. */
  tasks: "MERGELOOM_TASKS",
  /** Limits retention (max age): results and events kept so they can be replayed. */
  results: "MERGELOOM_RESULTS",
} as const;

/** Durable consumer names. */
export const consumers = {
  mergeWorkers: "mergeloom-merge-workers",
  evalWorkers: "mergeloom-eval-workers",
  /** Workers that have scorer `name` (see subjects.taskScore). */
  scorerWorkers: (scorer: string): string => `mergeloom-scorer-${subjectToken(scorer)}`,
} as const;

/** Headers the transports and tracing agree on. */
export const headers = {
  /** W3C trace context. */
  traceparent: "traceparent",
  tracestate: "tracestate",
  jobId: "mergeloom-job",
  taskId: "mergeloom-task",
} as const;

const TOKEN = /^[A-Za-z0-9_-]+$/;

/** A job id used inside a subject must be a single token: no dots, wildcards or spaces. */
export function subjectToken(id: string): string {
  if (!TOKEN.test(id)) {
    throw new ProtocolError(`build subject for '${id}': ids in subjects may only use letters, digits, '_' and '-'`, "MESSAGE_INVALID");
  }
  return id;
}
