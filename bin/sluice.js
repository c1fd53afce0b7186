#!/usr/bin/env node
// Entry point: Node 24 runs the TypeScript sources directly (type stripping).
import '../controller/cli.ts';
