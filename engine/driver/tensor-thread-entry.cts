/**
 * The file piscina loads in each merge thread: a CommonJS module that imports the ESM thread
 * module asynchronously. Piscina `require()`s its filename first, and on Node >= 20.19 `require()`
 * of an ES module loads it synchronously; a thread terminated in that window (a signal arriving
 * while the pool replaces a cancelled task's thread, then `destroy()`) aborts the whole process
 * with a V8 fatal error ("IsGraphAsync must be used on an instantiated module"). An `import()` that
 * is cut short only ends its thread. Piscina awaits the `default` export of what `require` returns.
 */
export = import("./tensor-thread.js").then((m) => m.default);
