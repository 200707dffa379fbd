export { Archive, type ArchiveOptions, openArchive, type RecordResult, type StartTrajectoryInput } from './archive';
export { type ArtChoice, type ArtMessageOrChoice, type ArtTrajectory, conversationOf, isChoice, toArtTrajectory } from './art';
export { applyDropout, type DropoutResult, dropoutRate, MAX_DROPOUT_RATE } from './dropout';
export { ArchiveConnectionError, ArchiveInputError, ArchiveStateError, isConnectionLoss } from './errors';
export { MIGRATIONS, type Migration, migrate, SCHEMA_VERSION, schemaVersion } from './migrations';
export { type ArchiveRecorderOptions, archiveAgentId, archiveCallRecorder, type EndpointCall } from './recorder';
export type {
  CachedJudgeScores,
  JudgeScore,
  MarketOutcome,
  StoredLlmCall,
  StoredTrajectory,
  TrainedModel,
  TrainingBatch,
  TrainingBatchStatus,
  WindowSummary,
} from './rows';
export {
  DEFAULT_POSTGRES_URL,
  openSqlClient,
  PgliteClient,
  PostgresClient,
  type PostgresOptions,
  type SqlClient,
  type SqlQueryer,
} from './sql';
export type { ChatMessage, Json, LlmCallInput, Step, StepInput, TokenLogprob, TrajectoryInput } from './validate';
export { WINDOW_HOURS, windowBounds, windowId } from './window';
