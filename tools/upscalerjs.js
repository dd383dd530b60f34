// Runs an @upscalerjs ESRGAN model (a TF.js layers model from npm, MIT) on every PNG of
// IN_DIR, writing OUT_DIR/NAME.png: the peer tools/evaluate-peers.sh compares the ×4 presets
// with. TF.js's pure-JavaScript CPU backend, so it needs nothing native; the model's own
// definition gives its custom layers (setup) and its input and output ranges.
//   NODE_PATH=data/peers/js/node_modules node tools/upscalerjs.js @upscalerjs/esrgan-slim 4 IN OUT
'use strict';
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');
const { PNG } = require('pngjs');

async function loadModel(pkg, scale) {
    const def = require(`${pkg}/${scale}x`);
    if (def.setup) def.setup(tf);
    let root = path.dirname(require.resolve(`${pkg}/${scale}x`)); // its package's folder
    while (!fs.existsSync(path.join(root, 'package.json'))) root = path.dirname(root);
    const file = path.join(root, def._internals.path);
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    const specs = [], shards = [];
    for (const group of json.weightsManifest) {
        specs.push(...group.weights);
        for (const p of group.paths) shards.push(fs.readFileSync(path.join(path.dirname(file), p)));
    }
    const all = Buffer.concat(shards);
    const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
    const model = await tf.loadLayersModel(
        tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: specs, weightData }));
    return { model, inMax: def.inputRange[1], outMax: def.outputRange[1] };
}

function upscale({ model, inMax, outMax }, src, dst) {
    const png = PNG.sync.read(fs.readFileSync(src));
    const { width: w, height: h } = png;
    const rgb = new Float32Array(w * h * 3);
    for (let i = 0; i < w * h; i++)
        for (let c = 0; c < 3; c++) rgb[3 * i + c] = png.data[4 * i + c] * (inMax / 255);
    const y = tf.tidy(() => model.predict(tf.tensor4d(rgb, [1, h, w, 3])).clipByValue(0, outMax));
    const [, oh, ow] = y.shape, v = y.dataSync();
    y.dispose();
    const out = new PNG({ width: ow, height: oh });
    for (let i = 0; i < ow * oh; i++) {
        for (let c = 0; c < 3; c++) out.data[4 * i + c] = Math.round(v[3 * i + c] * (255 / outMax));
        out.data[4 * i + 3] = 255;
    }
    fs.writeFileSync(dst, PNG.sync.write(out));
}

async function main() {
    const [pkg, scale, inDir, outDir] = process.argv.slice(2);
    if (!outDir) {
        console.error('usage: node tools/upscalerjs.js PACKAGE SCALE IN_DIR OUT_DIR');
        process.exit(2);
    }
    await tf.setBackend('cpu');
    const m = await loadModel(pkg, scale);
    fs.mkdirSync(outDir, { recursive: true });
    for (const name of fs.readdirSync(inDir).filter((n) => n.endsWith('.png')).sort())
        upscale(m, path.join(inDir, name), path.join(outDir, name));
}

main().catch((e) => {
    console.error(`upscalerjs: ${e.message}`);
    process.exit(1);
});
