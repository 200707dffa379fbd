/** The archive contract on in-process PGlite (the embedded default: no server). */
import { pgliteBackend } from './backends';
import { archiveContract } from './contract';

archiveContract(pgliteBackend);
