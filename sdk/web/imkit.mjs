// The IMKit Web SDK as an ES module. The one implementation is imkit.js: a browser runs it
// as a module and it sets globalThis.IMKit; Node loads it as CommonJS (see package.json
// "type") and it exports { IMKit }. Either way this module re-exports that class.
import * as loaded from "./imkit.js";

const IMKit = loaded.IMKit ?? globalThis.IMKit;

export { IMKit };
