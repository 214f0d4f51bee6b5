/**
 * What an inbound SMS asks for, from its first word (case, surrounding whitespace and
 * trailing punctuation ignored: "  stop." is STOP, "Stop texting me" is STOP,
 * "please stop" is not a keyword). The CTIA standard keywords:
 * STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT opt out of the tenant's messages;
 * START, UNSTOP opt back in; HELP asks who is texting and how to stop.
 */
export type KeywordAction = { action: 'opt_out' | 'opt_in' | 'help'; keyword: string } | { action: 'none' };

export const OPT_OUT_KEYWORDS = ['STOP', 'STOPALL', 'UNSUBSCRIBE', 'CANCEL', 'END', 'QUIT'] as const;
export const OPT_IN_KEYWORDS = ['START', 'UNSTOP'] as const;
export const HELP_KEYWORDS = ['HELP'] as const;

export function classifyInbound(text: string | null | undefined): KeywordAction {
  const first = (text ?? '').trim().split(/\s+/)[0] ?? '';
  const word = first.toUpperCase().replace(/[^A-Z]+$/, '');
  if ((OPT_OUT_KEYWORDS as readonly string[]).includes(word)) return { action: 'opt_out', keyword: word };
  if ((OPT_IN_KEYWORDS as readonly string[]).includes(word)) return { action: 'opt_in', keyword: word };
  if ((HELP_KEYWORDS as readonly string[]).includes(word)) return { action: 'help', keyword: word };
  return { action: 'none' };
}

export function defaultHelpText(tenant: { name: string }): string {
  return `${tenant.name}: you receive messages from us because you signed up. Reply STOP to unsubscribe, START to resubscribe. Msg&data rates may apply.`;
}
