// mocha's spec reporter plus a closing "N passed, N failed, N skipped" line that CI systems read.
const Mocha = require('mocha');
const { EVENT_RUN_END } = Mocha.Runner.constants;
class Reporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once(EVENT_RUN_END, () => {
      const s = runner.stats;
      process.stdout.write(`\n${s.passes} passed, ${s.failures} failed, ${s.pending} skipped\n`);
    });
  }
}
module.exports = Reporter;
