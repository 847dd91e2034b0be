// src/platform/linux: applies TunnelSettings to a Linux interface the way wg-quick does
// (addresses, MTU, routes, the fwmark bypass of a full tunnel, DNS) and takes them off
// again; runs the PreUp/PostUp/PreDown/PostDown hooks.

export { type AppliedLinux, applyLinux, type ApplyLinuxOptions } from './apply.js';
export { type DnsMethod, detectDnsMethod, RESOLV_CONF } from './dns.js';
export { type CommandFailure, LinuxPlatformError, type LinuxPlatformErrorCode, renderCommand } from './errors.js';
export { createExec, type CreateExecOptions, type Exec, type ExecOptions, type ExecResult } from './exec.js';
export { type HookRun, runHooks, type RunHooksOptions } from './hooks.js';
export { type DescribeOptions, describeLinux, type LinuxStep, planLinux, type PlanValues } from './plan.js';
export { describeUndo, isLinuxUndo, type LinuxUndo, undoLinux } from './undo.js';
