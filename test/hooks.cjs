// Root hooks: destroy the engine's device once the suite is done, before mocha's forced exit
// (process.exit while Dawn still holds a device can segfault).
exports.mochaHooks = {
  async afterAll() {
    const { closeDevice } = await import('../build/engine/device.js');
    await closeDevice();
  },
};
