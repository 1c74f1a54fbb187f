// Example review stage, run in-process as a module: approves an implementation that wrote files.
// A request that says "needs changes" is sent back once, to show the review loop.
export default async function review(input, ctx) {
  const files = input.outputs.implementation?.files ?? [];
  if (files.length === 0) {
    return { verdict: 'request_changes', comments: 'the implementation wrote no files' };
  }
  const alreadyReviewed = input.feedback.some((f) => f.source === 'review');
  if (/needs changes/i.test(input.request) && !alreadyReviewed) {
    ctx.logger.info('asking for one round of changes, as the request says');
    return { verdict: 'request_changes', comments: 'add a line saying the review feedback was addressed' };
  }
  return { verdict: 'approve', comments: `looked at ${files.length} file(s)` };
}
