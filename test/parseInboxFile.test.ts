/** Markdown inbox files: the front matter fences as editors write them. parseInboxFile is pure, so it is called directly. */
import { describe, expect, it } from 'vitest';
import { InboxFileError } from '../src/errors.js';
import { parseInboxFile } from '../src/inbox/parseInboxFile.js';

describe('parseInboxFile: markdown front matter', () => {
  it('takes an empty front matter block as no front matter', () => {
    expect(parseInboxFile('a.md', '---\n---\nfix the login page\n')).toEqual([{ request: 'fix the login page', priority: undefined, tags: undefined, dependsOn: undefined }]);
    expect(parseInboxFile('a.md', '---\r\n---\r\nfix it')[0].request).toBe('fix it');
  });

  it('reads front matter after a leading byte order mark', () => {
    const [task] = parseInboxFile('a.md', '\uFEFF---\npriority: high\ntags: [web]\n---\nfix the login page');
    expect(task).toMatchObject({ request: 'fix the login page', priority: 'high', tags: ['web'] });
    expect(parseInboxFile('a.json', '\uFEFF{"request": "from JSON"}')[0].request).toBe('from JSON');
  });

  it('does not take `---body` for a closing fence', () => {
    // Without a closing fence on a line of its own there is no front matter: the whole text is the request.
    const text = '---\npriority: high\n---not a fence\nstill the body';
    expect(parseInboxFile('a.md', text)).toEqual([{ request: text }]);
    // A real fence after it still closes the block, and `---body` lines inside the body stay body.
    const [task] = parseInboxFile('a.md', '---\npriority: low\n---\n---body line\nmore');
    expect(task).toMatchObject({ request: '---body line\nmore', priority: 'low' });
  });

  it('still reads front matter closed at the end of the file as an empty body, and says so', () => {
    expect(() => parseInboxFile('a.md', '---\npriority: high\n---')).toThrow(InboxFileError);
    expect(() => parseInboxFile('a.md', '---\npriority: high\n---')).toThrow(/body is empty/);
    expect(() => parseInboxFile('a.md', '---\npriority: high\n---')).toThrow(expect.objectContaining({ code: 'INBOX_FILE', exitCode: 2 }));
  });
});
