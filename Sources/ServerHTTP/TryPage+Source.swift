extension TryPage {
    /// The page: one HTML document with its style and script inline, no external asset.
    /// `{{NONCE}}`, `{{MODEL_OPTIONS}}` and `{{MODELS_JSON}}` are filled in per request.
    static let source = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Try a model · swift-model-server</title>
        <style nonce="{{NONCE}}">
        :root { color-scheme: light; --ink: #1f2933; --muted: #616e7c; --line: #d9e2ec; --accent: #2f6fdf; --soft: #f0f4f8; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--ink); background: #fff; }
        header { padding: 14px 24px; border-bottom: 1px solid var(--line); display: flex; align-items: baseline; gap: 16px; }
        header h1 { font-size: 18px; margin: 0; }
        header span { color: var(--muted); font-size: 13px; }
        main { padding: 16px 24px; max-width: 1100px; }
        .row { display: flex; flex-wrap: wrap; gap: 16px; align-items: end; margin-bottom: 14px; }
        label { display: flex; flex-direction: column; gap: 4px; font-size: 13px; color: var(--muted); }
        select, input, textarea, button { font: inherit; color: var(--ink); }
        select, input[type=text], input[type=password], textarea { border: 1px solid var(--line); border-radius: 6px; padding: 6px 8px; background: #fff; }
        select { min-width: 200px; }
        textarea { width: 100%; min-height: 90px; resize: vertical; }
        button { border: 0; border-radius: 6px; padding: 7px 14px; background: var(--accent); color: #fff; cursor: pointer; }
        button:disabled { opacity: .5; cursor: default; }
        .kind { font-size: 12px; padding: 2px 8px; border-radius: 10px; background: var(--soft); color: var(--muted); }
        .panel { border: 1px solid var(--line); border-radius: 8px; padding: 14px; margin-bottom: 14px; }
        .drop { border: 2px dashed var(--line); border-radius: 8px; padding: 22px; text-align: center; color: var(--muted); }
        .drop.over { border-color: var(--accent); background: var(--soft); }
        .drop label { display: inline; color: inherit; }
        .pair { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
        figure { margin: 0; }
        figure img, figure canvas { display: block; width: 320px; max-width: 100%; border-radius: 4px; border: 1px solid var(--line); }
        figure img.small { image-rendering: pixelated; }
        figcaption { font-size: 12px; color: var(--muted); margin-top: 4px; }
        .legend { list-style: none; margin: 0; padding: 0; min-width: 200px; }
        .legend li { display: flex; align-items: center; gap: 8px; padding: 2px 0; font-size: 14px; }
        .swatch { width: 16px; height: 16px; border-radius: 3px; border: 1px solid rgba(0,0,0,.2); flex: none; }
        .share { margin-left: auto; color: var(--muted); font-variant-numeric: tabular-nums; padding-left: 12px; }
        .bars { flex: 1; min-width: 280px; }
        .bar-row { display: grid; grid-template-columns: minmax(90px, 12em) 1fr 4.5em; gap: 10px; align-items: center; padding: 3px 0; }
        .bar-label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
        .bar-track { background: var(--soft); border-radius: 4px; height: 16px; }
        .bar { background: var(--accent); border-radius: 4px; height: 16px; }
        .bar-value { text-align: right; color: var(--muted); font-variant-numeric: tabular-nums; }
        .context { white-space: pre-wrap; line-height: 1.7; }
        mark { background: #ffe58f; padding: 1px 2px; border-radius: 3px; }
        pre { background: var(--soft); padding: 10px; border-radius: 6px; overflow: auto; max-height: 400px; }
        .error { color: #b42318; }
        .hint { color: var(--muted); font-size: 13px; margin: 6px 0 0; }
        [hidden] { display: none !important; }
        </style>
        </head>
        <body>
        <header><h1>Try a model</h1><span id="status">swift-model-server, inference port</span></header>
        <main>
        <div class="row">
          <label>Model <select id="model">{{MODEL_OPTIONS}}</select></label>
          <label>Version <select id="version"></select></label>
          <span id="kind" class="kind"></span>
        </div>
        <p id="no-models" class="hint" hidden>No model is registered. Register one on the management port (<code>POST /models?url=…</code>) and reload.</p>
        <form id="key-panel" class="panel" hidden>
          <div class="row">
            <label>Inference key <input id="key" type="password" autocomplete="off" size="48"></label>
            <button id="key-submit" type="submit">Use key</button>
          </div>
          <p id="key-message" class="hint"></p>
          <p class="hint">The key is the <code>inference</code> key of <code>key_file.json</code>. This page keeps it for this tab only (sessionStorage) and sends it as <code>Authorization: Bearer</code>.</p>
        </form>
        <section id="image-input" class="panel" hidden>
          <div id="drop" class="drop">Drop a PNG or JPEG here, or <label><input id="file" type="file" accept="image/png,image/jpeg"></label></div>
        </section>
        <section id="text-input" class="panel" hidden>
          <label>Text <textarea id="text">The compiler crashed and the kernel panicked</textarea></label>
          <p><button id="run-text" type="button">Classify</button></p>
        </section>
        <section id="qa-input" class="panel" hidden>
          <label>Question <input id="question" type="text" value="Where do I live?"></label>
          <label>Context <textarea id="context">My name is Alex, I am 32 and live in Copenhagen.</textarea></label>
          <p><button id="run-qa" type="button">Answer</button></p>
        </section>
        <section id="raw-input" class="panel" hidden>
          <label>Body (sent as it is) <textarea id="raw-body"></textarea></label>
          <p><button id="run-raw" type="button">Send</button> or a file: <input id="raw-file" type="file"></p>
        </section>
        <p id="error" class="error" role="alert"></p>
        <section id="output" aria-live="polite"></section>
        </main>
        <script type="application/json" id="models">{{MODELS_JSON}}</script>
        <script nonce="{{NONCE}}">
        "use strict";
        (function () {
          const $ = (id) => document.getElementById(id);
          const page = JSON.parse($("models").textContent);
          const keyName = "swift-model-server.inference-key";
          let models = page.models;
          let keyWaiters = [];
          let busy = false;

          function element(tag, className, text) {
            const node = document.createElement(tag);
            if (className) node.className = className;
            if (text !== undefined) node.textContent = text;
            return node;
          }

          // PASCAL VOC's palette, as the server draws overlays.
          function colour(k) {
            let r = 0, g = 0, b = 0;
            for (let j = 0; j < 8; j++) {
              r |= (k & 1) << (7 - j); g |= ((k >> 1) & 1) << (7 - j); b |= ((k >> 2) & 1) << (7 - j);
              k >>= 3;
            }
            return "rgb(" + r + "," + g + "," + b + ")";
          }

          function authHeaders() {
            const key = sessionStorage.getItem(keyName);
            return key ? { Authorization: "Bearer " + key } : {};
          }

          function askKey(message) {
            $("key-panel").hidden = false;
            $("key-message").textContent = message;
            $("key").focus();
            return new Promise((resolve) => keyWaiters.push(resolve));
          }

          $("key-panel").addEventListener("submit", (event) => {
            event.preventDefault();
            const key = $("key").value.trim();
            if (!key) return;
            sessionStorage.setItem(keyName, key);
            $("key").value = "";
            $("key-panel").hidden = true;
            const waiting = keyWaiters;
            keyWaiters = [];
            waiting.forEach((resolve) => resolve());
          });

          // A call to the server; a 401 asks for the key and sends the call again.
          async function call(url, options) {
            for (let attempt = 0; ; attempt++) {
              const hadKey = Boolean(sessionStorage.getItem(keyName));
              const headers = Object.assign({}, options.headers || {}, authHeaders());
              const response = await fetch(url, Object.assign({}, options, { headers: headers, cache: "no-store" }));
              if (response.status !== 401 || attempt >= 3) return response;
              sessionStorage.removeItem(keyName);
              await askKey(hadKey ? "The server did not accept that key; enter the current one."
                                  : "Token authorization is on: this call needs the inference key.");
            }
          }

          // With token authorization on, the models come with the page only when it is asked for with the key.
          async function unlock() {
            let message = "Token authorization is on: enter the inference key to list and call the models.";
            for (;;) {
              if (sessionStorage.getItem(keyName)) {
                const response = await fetch("/", { headers: Object.assign({ Accept: "text/html" }, authHeaders()), cache: "no-store" });
                // The embedded JSON has every "<" escaped, so the first end tag after it closes it.
                // (Not DOMParser: its copy of the page's style element would break this page's policy.)
                const html = await response.text();
                const opening = 'id="models">';  // its first occurrence: the JSON element comes before this script
                const start = html.indexOf(opening) + opening.length;
                const fresh = JSON.parse(html.slice(start, html.indexOf("<\/script>", start)));
                if (!fresh.locked) return fresh.models;
                sessionStorage.removeItem(keyName);
                message = "The server did not accept that key; enter the current one.";
              }
              await askKey(message);
            }
          }

          function current() {
            const model = models.find((m) => m.name === $("model").value);
            if (!model) return null;
            const version = model.versions.find((v) => v.version === $("version").value) || model.versions[0];
            return { model: model, version: version };
          }

          function predictURL() {
            const chosen = current();
            return "/predictions/" + encodeURIComponent(chosen.model.name) + "/" + encodeURIComponent(chosen.version.version);
          }

          function showError(text) { $("error").textContent = text; }

          async function failure(response) {
            const text = await response.text();
            try {
              const body = JSON.parse(text);
              return response.status + " " + (body.type ? body.type + ": " : "") + (body.message || body.error || text);
            } catch (e) {
              return response.status + " " + text;
            }
          }

          function fillModels() {
            const select = $("model");
            const chosen = select.value;
            select.replaceChildren();
            for (const model of models) {
              const option = element("option", "", model.name);
              option.value = model.name;
              select.appendChild(option);
            }
            if (models.some((m) => m.name === chosen)) select.value = chosen;
            $("no-models").hidden = models.length > 0;
            modelChanged();
          }

          function modelChanged() {
            const model = models.find((m) => m.name === $("model").value);
            const select = $("version");
            select.replaceChildren();
            for (const version of model ? model.versions : []) {
              const option = element("option", "", version.version + (version.default ? " (default)" : ""));
              option.value = version.version;
              if (version.default) option.selected = true;
              select.appendChild(option);
            }
            kindChanged();
          }

          function kindChanged() {
            const chosen = current();
            const kind = chosen ? chosen.version.handler : "";
            $("kind").textContent = kind;
            $("kind").hidden = !kind;
            const image = ["image_segmenter", "image_classifier", "object_detector"].includes(kind);
            $("image-input").hidden = !image;
            $("text-input").hidden = kind !== "text_classifier";
            $("qa-input").hidden = kind !== "question_answering";
            $("raw-input").hidden = !chosen || image || ["text_classifier", "question_answering"].includes(kind);
            $("output").replaceChildren();
            showError("");
          }

          function labelName(labels, id) {
            return labels && labels[String(id)] !== undefined ? labels[String(id)] : "class " + id;
          }

          // Images smaller than their box are shown with their pixels, as a mask is computed.
          function figure(node, caption) {
            const holder = element("figure");
            if (node.tagName === "IMG") {
              const mark = () => node.classList.toggle("small", node.naturalWidth > 0 && node.naturalWidth < 320);
              if (node.complete) mark(); else node.addEventListener("load", mark);
            }
            holder.appendChild(node);
            holder.appendChild(element("figcaption", "", caption));
            return holder;
          }

          function loadImage(url) {
            return new Promise((resolve, reject) => {
              const img = new Image();
              img.onload = () => resolve(img);
              img.onerror = () => reject(new Error("the browser cannot show this image"));
              img.src = url;
            });
          }

          function bars(scores, labelTitle) {
            const holder = element("div", "bars");
            holder.id = "bars";
            holder.appendChild(element("h3", "", labelTitle));
            for (const [label, value] of Object.entries(scores).sort((a, b) => b[1] - a[1])) {
              const row = element("div", "bar-row");
              row.appendChild(element("span", "bar-label", label)).title = label;
              const track = element("div", "bar-track");
              const bar = element("div", "bar");
              bar.style.width = Math.max(0, Math.min(100, value * 100)).toFixed(1) + "%";
              track.appendChild(bar);
              row.appendChild(track);
              row.appendChild(element("span", "bar-value", (value * 100).toFixed(1) + " %"));
              holder.appendChild(row);
            }
            return holder;
          }

          async function segment(file, inputURL) {
            const overlay = await call(predictURL() + "?output=overlay", { method: "POST", body: file });
            if (!overlay.ok) throw new Error(await failure(overlay));
            const overlayImage = element("img");
            overlayImage.id = "overlay";
            overlayImage.alt = "segmentation overlay";
            const loaded = new Promise((resolve) => { overlayImage.onload = resolve; });
            overlayImage.src = URL.createObjectURL(await overlay.blob());
            const mask = await call(predictURL() + "?output=json", { method: "POST", body: file });
            if (!mask.ok) throw new Error(await failure(mask));
            const classes = atob((await mask.json()).base64_prediction || "");
            const counts = new Map();
            for (let i = 0; i < classes.length; i++) {
              const id = classes.charCodeAt(i);
              counts.set(id, (counts.get(id) || 0) + 1);
            }
            const legend = element("ul", "legend");
            legend.id = "legend";
            const labels = current().version.labels;
            for (const [id, count] of [...counts.entries()].sort((a, b) => b[1] - a[1])) {
              const item = element("li");
              const swatch = element("span", "swatch");
              swatch.style.background = colour(id);
              item.appendChild(swatch);
              item.appendChild(element("span", "", labelName(labels, id)));
              item.appendChild(element("span", "share", (100 * count / classes.length).toFixed(1) + " %"));
              legend.appendChild(item);
            }
            const input = element("img");
            input.src = inputURL;
            input.alt = "input";
            await loaded;
            const pair = element("div", "pair");
            pair.appendChild(figure(input, "input"));
            pair.appendChild(figure(overlayImage, "overlay: each pixel blended with its class colour"));
            const legendBox = element("div");
            legendBox.appendChild(element("h3", "", "classes (share of pixels)"));
            legendBox.appendChild(legend);
            pair.appendChild(legendBox);
            return pair;
          }

          async function classify(file, inputURL) {
            const response = await call(predictURL(), { method: "POST", body: file });
            if (!response.ok) throw new Error(await failure(response));
            const scores = await response.json();
            const input = element("img");
            input.src = inputURL;
            input.alt = "input";
            const pair = element("div", "pair");
            pair.appendChild(figure(input, "input"));
            pair.appendChild(bars(scores, "top labels"));
            return pair;
          }

          async function detect(file, inputURL) {
            const response = await call(predictURL(), { method: "POST", body: file });
            if (!response.ok) throw new Error(await failure(response));
            const detections = await response.json();
            const image = await loadImage(inputURL);
            const canvas = element("canvas");
            canvas.id = "boxes";
            const scale = Math.max(1, Math.ceil(640 / Math.max(image.naturalWidth, 1)));
            canvas.width = image.naturalWidth * scale;
            canvas.height = image.naturalHeight * scale;
            const context = canvas.getContext("2d");
            context.imageSmoothingEnabled = scale === 1;
            context.drawImage(image, 0, 0, canvas.width, canvas.height);
            const labels = current().version.labels || {};
            const ids = new Map(Object.entries(labels).map(([id, name]) => [name, Number(id)]));
            const list = element("ul", "legend");
            let drawn = 0;
            for (const detection of detections) {
              const label = Object.keys(detection).find((key) => key !== "score");
              const box = detection[label];
              if (!Array.isArray(box) || box.length !== 4) continue;
              const id = ids.has(label) ? ids.get(label) : 1;
              const stroke = colour(id === 0 ? 1 : id);
              const [x1, y1, x2, y2] = box.map((v) => v * scale);
              context.lineWidth = Math.max(2, scale);
              context.strokeStyle = stroke;
              context.strokeRect(x1, y1, x2 - x1, y2 - y1);
              const tag = label + " " + (detection.score * 100).toFixed(0) + "%";
              context.font = (10 + scale * 2) + "px sans-serif";
              const width = context.measureText(tag).width + 6;
              const height = 12 + scale * 2;
              context.fillStyle = stroke;
              context.fillRect(x1, Math.max(0, y1 - height), width, height);
              context.fillStyle = "#fff";
              context.fillText(tag, x1 + 3, Math.max(height - 3, y1 - 3));
              const item = element("li");
              const swatch = element("span", "swatch");
              swatch.style.background = stroke;
              item.appendChild(swatch);
              item.appendChild(element("span", "", label));
              item.appendChild(element("span", "share", (detection.score * 100).toFixed(1) + " %"));
              list.appendChild(item);
              drawn++;
            }
            canvas.dataset.boxes = String(drawn);
            const pair = element("div", "pair");
            pair.appendChild(figure(canvas, drawn ? drawn + " boxes" : "nothing detected above the model's threshold"));
            const listBox = element("div");
            listBox.appendChild(element("h3", "", "detections (score)"));
            listBox.appendChild(list);
            pair.appendChild(listBox);
            return pair;
          }

          async function runImage(file) {
            if (!file) return;
            const kind = current().version.handler;
            const inputURL = URL.createObjectURL(file);
            if (kind === "image_segmenter") return segment(file, inputURL);
            if (kind === "image_classifier") return classify(file, inputURL);
            return detect(file, inputURL);
          }

          async function runText() {
            const response = await call(predictURL(), {
              method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ text: $("text").value }),
            });
            if (!response.ok) throw new Error(await failure(response));
            return bars(await response.json(), "labels");
          }

          async function runQA() {
            const context = $("context").value;
            const response = await call(predictURL(), {
              method: "POST", headers: { "Content-Type": "application/json" },
              body: JSON.stringify({ question: $("question").value, context: context }),
            });
            if (!response.ok) throw new Error(await failure(response));
            const result = await response.json();
            const holder = element("div", "panel");
            holder.appendChild(element("h3", "", "answer: " + (result.answer || "(none)")
              + (typeof result.score === "number" ? "  (score " + result.score.toFixed(3) + ")" : "")));
            const paragraph = element("p", "context");
            paragraph.id = "qa-context";
            // start/end count Unicode code points; without them, the answer is looked up in the context.
            const points = Array.from(context);
            let start = -1, end = -1;
            if (typeof result.start === "number" && typeof result.end === "number" && result.end > result.start) {
              start = result.start; end = result.end;
            } else if (result.answer) {
              const at = context.toLowerCase().indexOf(result.answer.toLowerCase());
              if (at >= 0) { start = Array.from(context.slice(0, at)).length; end = start + Array.from(result.answer).length; }
            }
            if (start >= 0) {
              paragraph.appendChild(document.createTextNode(points.slice(0, start).join("")));
              const mark = element("mark", "", points.slice(start, end).join(""));
              mark.id = "qa-answer";
              paragraph.appendChild(mark);
              paragraph.appendChild(document.createTextNode(points.slice(end).join("")));
            } else {
              paragraph.textContent = context;
            }
            holder.appendChild(paragraph);
            return holder;
          }

          async function runRaw(body) {
            const response = await call(predictURL(), { method: "POST", body: body });
            if (!response.ok) throw new Error(await failure(response));
            const type = response.headers.get("Content-Type") || "";
            if (type.startsWith("image/")) {
              const img = element("img");
              img.src = URL.createObjectURL(await response.blob());
              return figure(img, type);
            }
            const text = await response.text();
            let shown = text;
            try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON: as it is */ }
            const pre = element("pre", "", shown);
            pre.id = "raw";
            return pre;
          }

          async function run(work) {
            if (busy || !current()) return;
            busy = true;
            showError("");
            $("status").textContent = "running " + current().model.name + "…";
            try {
              const started = performance.now();
              const result = await work();
              if (result) $("output").replaceChildren(result);
              $("status").textContent = current().model.name + " answered in " + Math.round(performance.now() - started) + " ms";
            } catch (error) {
              showError(error.message || String(error));
              $("status").textContent = "";
            } finally {
              busy = false;
            }
          }

          $("model").addEventListener("change", modelChanged);
          $("version").addEventListener("change", kindChanged);
          $("file").addEventListener("change", () => run(() => runImage($("file").files[0])));
          $("run-text").addEventListener("click", () => run(runText));
          $("run-qa").addEventListener("click", () => run(runQA));
          $("run-raw").addEventListener("click", () => run(() => runRaw($("raw-body").value)));
          $("raw-file").addEventListener("change", () => run(() => runRaw($("raw-file").files[0])));
          const drop = $("drop");
          drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
          drop.addEventListener("dragleave", () => drop.classList.remove("over"));
          drop.addEventListener("drop", (event) => {
            event.preventDefault();
            drop.classList.remove("over");
            const file = event.dataTransfer.files[0];
            if (file) run(() => runImage(file));
          });

          (async function start() {
            if (page.locked) {
              models = await unlock();
            }
            fillModels();
            document.body.dataset.ready = "true";
          })().catch((error) => showError(error.message || String(error)));
        })();
        </script>
        </body>
        </html>
        """#
}
