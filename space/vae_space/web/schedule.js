// One busy/queued loop for every live view: while a computation runs, the requests that come in collapse into
// one more run with the newest state, so a view never falls behind its input and never runs twice at once.
// No DOM: unit-tested with node --test (test/schedule.test.js).

export class Latest {
  constructor(work, onError = (err) => console.warn("vae-hub:", err)) {
    this.work = work;
    this.onError = onError;
    this.busy = false;
    this.queued = false;
    this.idle = Promise.resolve();
  }

  // Ask for a run; returns a promise that settles when the loop is idle again.
  request() {
    this.queued = true;
    if (!this.busy) this.idle = this.run();
    return this.idle;
  }

  async run() {
    this.busy = true;
    try {
      while (this.queued) {
        this.queued = false;
        try {
          await this.work();
        } catch (err) {
          this.onError(err);
        }
      }
    } finally {
      this.busy = false;
    }
  }
}
