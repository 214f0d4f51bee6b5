/**
 * What an inbound SMS asks for, from its first word (case, surrounding whitespace and
 * trailing punctuation ignored: "  stop." is STOP, "Stop texting me" is STOP,
 * "please stop" is not a keyword). The CTIA standard keywords:
 * STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT (and REVOKE, OPTOUT, "opt out", which
 * carriers also honour) opt out of the tenant's messages; START, UNSTOP opt back in;
 * HELP asks who is texting and how to stop. Only the first INBOUND_TEXT_LIMIT characters
 * are read: a longer text is no more a keyword, and matching stays cheap whatever arrives.
 */
export type KeywordAction = { action: 'opt_out' | 'opt_in' | 'help'; keyword: string } | { action: 'none' };

export const OPT_OUT_KEYWORDS = ['STOP', 'STOPALL', 'UNSUBSCRIBE', 'CANCEL', 'END', 'QUIT', 'REVOKE', 'OPTOUT'] as const;
/** Ten concatenated SMS parts; carriers deliver no more. */
export const INBOUND_TEXT_LIMIT = 1600;

export const OPT_IN_KEYWORDS = ['START', 'UNSTOP'] as const;
export const HELP_KEYWORDS = ['HELP'] as const;

/** Upper case, trailing non-letters dropped, by one backward scan (a regex anchored at $ retries from every position). */
function keywordOf(word: string): string {
  let end = word.length;
  while (end > 0) {
    const c = word.charCodeAt(end - 1);
    if ((c >= 65 && c <= 90) || (c >= 97 && c <= 122)) break;
    end--;
  }
  return word.slice(0, end).toUpperCase();
}

export function classifyInbound(text: string | null | undefined): KeywordAction {
  const words = (text ?? '').slice(0, INBOUND_TEXT_LIMIT).trim().split(/\s+/, 2);
  const word = keywordOf(words[0] ?? '');
  // "opt out" is the one two-word keyword.
  if (word === 'OPT' && keywordOf(words[1] ?? '') === 'OUT') return { action: 'opt_out', keyword: 'OPT OUT' };
  if ((OPT_OUT_KEYWORDS as readonly string[]).includes(word)) return { action: 'opt_out', keyword: word };
  if ((OPT_IN_KEYWORDS as readonly string[]).includes(word)) return { action: 'opt_in', keyword: word };
  if ((HELP_KEYWORDS as readonly string[]).includes(word)) return { action: 'help', keyword: word };
  return { action: 'none' };
}

export function defaultHelpText(tenant: { name: string }): string {
  return `${tenant.name}: you receive messages from us because you signed up. Reply STOP to unsubscribe, START to resubscribe. Msg&data rates may apply.`;
}
