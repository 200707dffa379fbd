/**
 * The archive contract on a real PostgreSQL server: a fresh database with a random name, dropped after.
 * Outside CI a missing server skips this file with a message; under CI=true it fails.
 */
import { postgresBackend } from './backends';
import { archiveContract } from './contract';

archiveContract(postgresBackend());
