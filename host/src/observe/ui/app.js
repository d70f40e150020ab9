// porin flows UI: follows `GET /v1/flows` (NDJSON) and shows the flows as a
// live service map and a live table. Plain JS, no build step, no libraries.
//
// Everything from the stream is untrusted text (URLs, DNS names, labels):
// it only ever reaches the page through textContent and setAttribute.
'use strict';

(() => {
  const TABLE_CAP = 1000; // rows kept in the table
  const SEEN_CAP = 50000; // flow uuids remembered to drop replays after a reconnect
  const DRAW_INTERVAL_MS = 250; // at most four redraws a second
  const BACKOFF_MIN_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  const VERDICTS = ['FORWARDED', 'DROPPED', 'ERROR', 'REDIRECTED'];
  const SVG_NS = 'http://www.w3.org/2000/svg';

  // The filter bar, in the agent's query parameter names. `list` filters
  // take comma-separated values, sent as repeated parameters (ORed).
  const TEXT_FILTERS = [
    { name: 'namespace', list: true },
    { name: 'pod', list: true },
    { name: 'from_pod', list: true },
    { name: 'to_pod', list: true },
    { name: 'label', list: true },
    { name: 'protocol', list: true },
    { name: 'port', list: true },
    { name: 'http_method', list: true },
    { name: 'http_path', list: false }, // a regex may contain commas
    { name: 'http_status', list: true },
    { name: 'dns_query', list: false },
    { name: 'since', list: false },
    { name: 'last', list: false },
  ];

  // Map geometry, in SVG user units (pixels).
  const L = {
    margin: 16,
    marginTop: 40, // room for edges that arc over a row
    nodeW: 184,
    nodeH: 44,
    nodeGap: 14,
    padX: 14,
    padTop: 32,
    padBottom: 14,
    colGap: 180,
    rowGap: 60,
  };
  L.groupW = L.nodeW + 2 * L.padX;

  // Endpoints without a pod go to one of two groups after the namespaces.
  const CLUSTER_GROUP = { id: '\u0001cluster', title: 'host & cluster', rank: 1 };
  const OUTSIDE_GROUP = { id: '\u0002outside', title: 'outside the cluster', rank: 2 };
  const RESERVED_ORDER = ['world', 'host', 'remote-node', 'kube-apiserver', 'ingress', 'health', 'init', 'unmanaged'];

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $('status'),
    statusText: $('status-text'),
    flowCount: $('flow-count'),
    lost: $('lost'),
    unreadable: $('unreadable'),
    pause: $('pause'),
    form: $('filters'),
    clear: $('clear-filters'),
    requestUrl: $('request-url'),
    filterError: $('filter-error'),
    mapScroll: $('map-scroll'),
    map: $('map'),
    rows: $('flow-rows'),
    tableScroll: document.querySelector('.table-scroll'),
    noFlows: $('no-flows'),
    pending: $('pending'),
    detail: $('detail'),
    detailJson: $('detail-json'),
    detailClose: $('detail-close'),
  };

  const state = {
    params: new URLSearchParams(), // the filters of the current stream
    gen: 0, // bumped on every (re)connect; stale streams stop reading
    abort: null,
    retryTimer: 0,
    backoff: BACKOFF_MIN_MS,
    seen: new Set(),
    received: 0,
    lost: 0,
    lostSources: new Map(),
    unreadable: 0,
    pending: [], // flows not yet in the table, oldest first
    paused: false,
    rowFlows: new WeakMap(),
    selectedRow: null,
    selectedNode: null,
    drawTimer: 0,
    lastDraw: 0,
    tableDue: 0, // when the table may take in new rows again
  };

  // ---------------------------------------------------------------- helpers

  const str = (v) => (typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v));
  const obj = (v) => (v && typeof v === 'object' && !Array.isArray(v) ? v : {});

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function svg(tag, attrs, parent) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }

  function shorten(text, max) {
    return text.length > max ? text.slice(0, max - 1) + '…' : text;
  }

  function plural(n, word) {
    return `${n} ${word}${n === 1 ? '' : 's'}`;
  }

  // The transport of a flow: protocol name and the service port. A reply
  // travels from the service, so its service port is the source port.
  function transport(flow, reply) {
    const l4 = obj(flow.l4);
    for (const [key, proto] of [['TCP', 'tcp'], ['UDP', 'udp'], ['SCTP', 'sctp']]) {
      if (l4[key]) {
        const ports = obj(l4[key]);
        return {
          proto,
          sport: ports.source_port,
          dport: ports.destination_port,
          service: reply ? ports.source_port : ports.destination_port,
        };
      }
    }
    if (l4.ICMPv4) return { proto: 'icmp' };
    if (l4.ICMPv6) return { proto: 'icmpv6' };
    if (l4.other) return { proto: `ip-proto ${str(obj(l4.other).protocol)}` };
    return { proto: '' };
  }

  // The L7 protocol of a flow's record (`http`, `dns`, `kafka` or a custom
  // filter's name), else the filter that handled it.
  function l7Protocol(flow) {
    const l7 = obj(flow.l7);
    for (const [key, value] of Object.entries(l7)) {
      if (value && typeof value === 'object' && !Array.isArray(value)) return key;
    }
    return str(obj(flow.proxy).filter);
  }

  function flowType(flow) {
    const l7 = obj(flow.l7);
    const proto = l7Protocol(flow);
    if (flow.l7 && proto) return `${proto}-${(str(l7.type) || 'record').toLowerCase()}`;
    return str(flow.Type) || 'L3_L4';
  }

  function formatTime(value) {
    const text = str(value);
    const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?$/i.exec(text);
    if (!m) return text;
    const millis = (m[2] || '.000').slice(0, 4).padEnd(4, '0');
    const date = new Date(m[1] + millis + (m[3] || 'Z'));
    if (Number.isNaN(date.getTime())) return text;
    const pad = (n, w) => String(n).padStart(w || 2, '0');
    return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
  }

  // ----------------------------------------------------------- map: model

  const model = {
    groups: new Map(), // id -> group
    order: [], // placed groups, in layout order
    nodes: new Map(), // key -> node
    edges: new Map(), // "src\0dst" -> edge
    dirty: false,
    cols: 0,
  };

  // What a flow endpoint is on the map: a workload (or pod) in its
  // namespace, else a reserved entity (world, host…), a CIDR or an address.
  function describeEndpoint(endpoint, ip) {
    const ep = obj(endpoint);
    const labels = Array.isArray(ep.labels) ? ep.labels.filter((l) => typeof l === 'string') : [];
    const workloads = Array.isArray(ep.workloads) ? ep.workloads : [];
    const workload = workloads.map(obj).find((w) => str(w.name));
    const ns = str(ep.namespace);
    const pod = str(ep.pod_name);
    if (ns && (workload || pod)) {
      const name = workload ? str(workload.name) : pod;
      return { key: `${ns}/${name}`, name, group: { id: ns, title: ns, rank: 0 }, kind: workload ? str(workload.kind) || 'workload' : 'pod' };
    }
    const reserved = labels.filter((l) => l.startsWith('reserved:')).map((l) => l.slice('reserved:'.length));
    if (reserved.length) {
      const rank = (name) => (RESERVED_ORDER.includes(name) ? RESERVED_ORDER.indexOf(name) : RESERVED_ORDER.length);
      reserved.sort((a, b) => rank(a) - rank(b));
      const name = reserved[0];
      return { key: name, name, group: name === 'world' ? OUTSIDE_GROUP : CLUSTER_GROUP, kind: 'reserved' };
    }
    const cidrs = labels.filter((l) => l.startsWith('cidr:')).map((l) => l.slice('cidr:'.length));
    if (cidrs.length) {
      const bits = (c) => Number(c.split('/')[1] || 0);
      cidrs.sort((a, b) => bits(b) - bits(a)); // the most specific prefix
      return { key: cidrs[0], name: cidrs[0], group: OUTSIDE_GROUP, kind: 'cidr' };
    }
    const fqdn = labels.find((l) => l.startsWith('fqdn:'));
    if (fqdn) {
      const name = fqdn.slice('fqdn:'.length);
      return { key: name, name, group: OUTSIDE_GROUP, kind: 'fqdn' };
    }
    const name = ip || (ep.identity !== undefined ? `identity ${ep.identity}` : 'unknown');
    if (ns) return { key: `${ns}/${name}`, name, group: { id: ns, title: ns, rank: 0 }, kind: 'endpoint' };
    return { key: name, name, group: OUTSIDE_GROUP, kind: 'address' };
  }

  function groupFor(spec) {
    let group = model.groups.get(spec.id);
    if (!group) {
      group = { ...spec, nodes: [], fresh: [], placed: false, el: null, x: 0, y: 0, h: 0 };
      model.groups.set(spec.id, group);
    }
    return group;
  }

  function nodeFor(endpoint, ip) {
    const d = describeEndpoint(endpoint, ip);
    let node = model.nodes.get(d.key);
    if (!node) {
      const group = groupFor(d.group);
      node = {
        key: d.key, name: d.name, kind: d.kind, group,
        identities: new Set(), pods: new Set(), ips: new Set(), labels: new Set(),
        el: null, x: 0, y: 0, tip: '',
      };
      model.nodes.set(d.key, node);
      group.fresh.push(node);
    }
    const ep = obj(endpoint);
    if (ep.identity !== undefined) node.identities.add(str(ep.identity));
    if (ep.pod_name && node.pods.size < 100) node.pods.add(str(ep.pod_name));
    if (ip && node.ips.size < 100) node.ips.add(ip);
    if (Array.isArray(ep.labels) && node.labels.size < 40) ep.labels.forEach((l) => node.labels.add(str(l)));
    return node;
  }

  function edgeFor(source, destination) {
    const key = `${source.key}\u0000${destination.key}`;
    let edge = model.edges.get(key);
    if (!edge) {
      edge = {
        key, source, destination,
        counts: { FORWARDED: 0, DROPPED: 0, ERROR: 0, REDIRECTED: 0 },
        ports: new Map(), // "80/tcp" -> Set of L7 protocols
        el: null, label: null,
      };
      model.edges.set(key, edge);
    }
    return edge;
  }

  // Adds a flow to the map. A reply is drawn on the edge of the request it
  // answers (never as a reverse edge) and counted only when it was not
  // let through, so one request/response exchange counts once.
  function addToMap(flow) {
    const reply = flow.is_reply === true;
    const ip = obj(flow.IP);
    let source = nodeFor(flow.source, str(ip.source));
    let destination = nodeFor(flow.destination, str(ip.destination));
    if (reply) [source, destination] = [destination, source];
    const edge = edgeFor(source, destination);
    const verdict = str(flow.verdict);
    if (verdict in edge.counts && (!reply || verdict === 'DROPPED' || verdict === 'ERROR')) {
      edge.counts[verdict] += 1;
    }
    const t = transport(flow, reply);
    if (t.proto) {
      const portKey = t.service !== undefined ? `${t.service}/${t.proto}` : t.proto;
      let l7 = edge.ports.get(portKey);
      if (!l7) {
        l7 = new Set();
        edge.ports.set(portKey, l7);
      }
      const proto = l7Protocol(flow);
      if (proto) l7.add(proto);
    }
    model.dirty = true;
  }

  // ---------------------------------------------------------- map: drawing

  const layers = {};

  function initMap() {
    const map = ui.map;
    while (map.firstChild) map.firstChild.remove();
    const defs = svg('defs', {}, map);
    for (const cls of ['forwarded', 'dropped', 'mixed', 'redirected', 'idle']) {
      const marker = svg('marker', {
        id: `arrow-${cls}`, class: `arrow ${cls}`, viewBox: '0 0 10 10', refX: '10', refY: '5',
        markerWidth: '9', markerHeight: '9', markerUnits: 'userSpaceOnUse', orient: 'auto',
      }, defs);
      svg('path', { d: 'M0,0 L10,5 L0,10 z' }, marker);
    }
    layers.groups = svg('g', { class: 'groups' }, map);
    layers.edges = svg('g', { class: 'edges' }, map);
    layers.nodes = svg('g', { class: 'nodes' }, map);
    layers.labels = svg('g', { class: 'labels' }, map);
    layers.empty = svg('text', { class: 'empty-text', x: String(L.margin), y: '40' }, map);
    layers.empty.textContent = 'Waiting for flows…';
    model.groups.clear();
    model.order = [];
    model.nodes.clear();
    model.edges.clear();
    model.dirty = true;
    map.setAttribute('width', '600');
    map.setAttribute('height', '80');
  }

  // New groups and nodes take the next free place, sorted among the ones
  // that arrived since the last redraw; placed ones never move sideways.
  // Among new namespaces, the ones that mostly send go left of the ones
  // that mostly receive, so most edges point right to a near column.
  function placeNew() {
    const fresh = [...model.groups.values()].filter((g) => !g.placed);
    const sends = new Map();
    for (const edge of model.edges.values()) {
      const from = edge.source.group;
      const to = edge.destination.group;
      if (from === to) continue;
      sends.set(from, (sends.get(from) || 0) + 1);
      sends.set(to, (sends.get(to) || 0) - 1);
    }
    fresh.sort((a, b) => a.rank - b.rank || (sends.get(b) || 0) - (sends.get(a) || 0) || a.title.localeCompare(b.title));
    for (const group of fresh) {
      group.placed = true;
      model.order.push(group);
    }
    for (const group of model.order) {
      if (!group.fresh.length) continue;
      group.fresh.sort((a, b) => a.name.localeCompare(b.name));
      group.nodes.push(...group.fresh);
      group.fresh = [];
    }
  }

  function layout() {
    const width = ui.mapScroll.clientWidth || 1200;
    const cols = Math.max(1, Math.floor((width - 2 * L.margin + L.colGap) / (L.groupW + L.colGap)));
    model.cols = cols;
    let y = L.marginTop;
    let maxX = 0;
    for (let start = 0; start < model.order.length; start += cols) {
      let rowHeight = 0;
      model.order.slice(start, start + cols).forEach((group, col) => {
        const n = group.nodes.length;
        group.x = L.margin + col * (L.groupW + L.colGap);
        group.y = y;
        group.h = L.padTop + n * L.nodeH + Math.max(0, n - 1) * L.nodeGap + L.padBottom;
        group.nodes.forEach((node, i) => {
          node.x = group.x + L.padX;
          node.y = group.y + L.padTop + i * (L.nodeH + L.nodeGap);
        });
        rowHeight = Math.max(rowHeight, group.h);
        maxX = Math.max(maxX, group.x + L.groupW);
      });
      y += rowHeight + L.rowGap;
    }
    return { width: maxX + L.margin, height: y - L.rowGap + L.margin };
  }

  function drawGroup(group) {
    if (!group.el) {
      group.el = svg('g', { class: 'group', 'data-group': group.title }, layers.groups);
      group.box = svg('rect', { class: group.rank ? 'group-box special' : 'group-box', rx: '8', width: String(L.groupW) }, group.el);
      group.titleEl = svg('text', { class: 'group-title' }, group.el);
      group.titleEl.textContent = shorten(group.title, 30);
      svg('title', {}, group.el).textContent = group.rank ? group.title : `namespace ${group.title}`;
    }
    group.box.setAttribute('x', group.x);
    group.box.setAttribute('y', group.y);
    group.box.setAttribute('height', group.h);
    group.titleEl.setAttribute('x', group.x + L.padX);
    group.titleEl.setAttribute('y', group.y + 20);
  }

  function nodeSubtitle(node) {
    const parts = [node.kind];
    if (node.pods.size > 1) parts.push(plural(node.pods.size, 'pod'));
    if (node.identities.size === 1) parts.push(`ID ${[...node.identities][0]}`);
    else if (node.identities.size > 1) parts.push(`${node.identities.size} identities`);
    return parts.join(' · ');
  }

  function nodeTooltip(node) {
    const list = (set, max) => {
      const items = [...set];
      return items.slice(0, max).join(', ') + (items.length > max ? `, … (${items.length})` : '');
    };
    const lines = [node.key, `kind: ${node.kind}`];
    if (node.identities.size) lines.push(`identity: ${list(node.identities, 10)}`);
    if (node.pods.size) lines.push(`pods: ${list(node.pods, 10)}`);
    if (node.ips.size) lines.push(`addresses: ${list(node.ips, 10)}`);
    if (node.labels.size) lines.push(`labels: ${list(node.labels, 15)}`);
    return lines.join('\n');
  }

  function drawNode(node) {
    if (!node.el) {
      node.el = svg('g', { class: 'node', 'data-node': node.key }, layers.nodes);
      node.titleEl = svg('title', {}, node.el);
      svg('rect', { width: String(L.nodeW), height: String(L.nodeH), rx: '6' }, node.el);
      const name = svg('text', { class: 'node-name', x: '10', y: '18' }, node.el);
      name.textContent = shorten(node.name, 24);
      node.subEl = svg('text', { class: 'node-sub', x: '10', y: '35' }, node.el);
      node.el.addEventListener('click', (event) => {
        event.stopPropagation();
        state.selectedNode = state.selectedNode === node.key ? null : node.key;
        applyFocus();
      });
    }
    node.el.setAttribute('transform', `translate(${node.x},${node.y})`);
    node.subEl.textContent = shorten(nodeSubtitle(node), 30);
    const tip = nodeTooltip(node);
    if (tip !== node.tip) {
      node.tip = tip;
      node.titleEl.textContent = tip;
    }
  }

  function edgeClass(counts) {
    const ok = counts.FORWARDED;
    const bad = counts.DROPPED + counts.ERROR;
    if (ok && bad) return 'mixed';
    if (bad) return 'dropped';
    if (ok) return 'forwarded';
    if (counts.REDIRECTED) return 'redirected';
    return 'idle';
  }

  // A cubic curve from the source's side to the destination's, and its
  // midpoint for the label. Edges of both directions between two nodes are
  // pulled apart a little.
  function edgeGeometry(edge) {
    const a = edge.source;
    const b = edge.destination;
    const W = L.nodeW;
    const H = L.nodeH;
    if (a === b) {
      const x = a.x + W;
      const y = a.y;
      return {
        d: `M${x} ${y + H * 0.3} C${x + 50} ${y - 16} ${x + 50} ${y + H + 16} ${x} ${y + H * 0.7}`,
        mx: x + 42, my: y + H / 2, right: x + 50,
      };
    }
    const reverse = model.edges.has(`${b.key}\u0000${a.key}`);
    const shift = reverse ? (a.key < b.key ? -6 : 6) : 0;
    const ay = a.y + H / 2 + shift;
    const by = b.y + H / 2 + shift;
    let p0, p1, p2, p3;
    if (Math.abs(a.x - b.x) < 1) {
      const x = a.x + W;
      const bulge = 44 + Math.min(120, Math.abs(by - ay) * 0.3) + (reverse ? (a.key < b.key ? 0 : 18) : 0);
      p0 = [x, ay]; p1 = [x + bulge, ay]; p2 = [x + bulge, by]; p3 = [x, by];
    } else if (a.group.y === b.group.y && Math.abs(b.x - a.x) > L.groupW + L.colGap + 1) {
      // Far apart in one row: arc over the groups between them.
      const top = a.group.y - 16; // the curve's midpoint height
      const lift = (8 * top - ay - by) / 6;
      const right = b.x > a.x;
      p0 = [right ? a.x + W : a.x, ay]; p3 = [right ? b.x : b.x + W, by];
      const dx = (right ? 1 : -1) * 60;
      p1 = [p0[0] + dx, lift]; p2 = [p3[0] - dx, lift];
    } else if (b.x > a.x) {
      p0 = [a.x + W, ay]; p3 = [b.x, by];
      const dx = Math.max(40, (p3[0] - p0[0]) / 2);
      p1 = [p0[0] + dx, ay]; p2 = [p3[0] - dx, by];
    } else {
      p0 = [a.x, ay]; p3 = [b.x + W, by];
      const dx = Math.max(40, (p0[0] - p3[0]) / 2);
      p1 = [p0[0] - dx, ay]; p2 = [p3[0] + dx, by];
    }
    const r = (v) => Math.round(v * 10) / 10;
    return {
      d: `M${r(p0[0])} ${r(p0[1])} C${r(p1[0])} ${r(p1[1])} ${r(p2[0])} ${r(p2[1])} ${r(p3[0])} ${r(p3[1])}`,
      mx: (p0[0] + 3 * p1[0] + 3 * p2[0] + p3[0]) / 8,
      my: (p0[1] + 3 * p1[1] + 3 * p2[1] + p3[1]) / 8,
      right: Math.max(p0[0], p1[0], p2[0], p3[0]),
    };
  }

  function portsText(edge, max) {
    const items = [...edge.ports.entries()].map(([port, l7]) => (l7.size ? `${port} ${[...l7].join('+')}` : port));
    items.sort((a, b) => (parseInt(a, 10) || 1e9) - (parseInt(b, 10) || 1e9) || a.localeCompare(b));
    if (max === undefined || items.length <= max) return items.join(', ');
    return `${items.slice(0, max).join(', ')} +${items.length - max}`;
  }

  function countParts(counts) {
    return [
      ['FORWARDED', 'fwd', 'ok'],
      ['DROPPED', 'drop', 'bad'],
      ['ERROR', 'err', 'err'],
      ['REDIRECTED', 'proxy', 'redir'],
    ].filter(([v]) => counts[v]).map(([v, word, cls]) => ({ text: `${word} ${counts[v]}`, cls }));
  }

  // The two lines of an edge's label: service ports, then counts.
  function labelLines(edge) {
    const parts = countParts(edge.counts);
    return { ports: shorten(portsText(edge, 2), 34), parts };
  }

  // Puts each label near its edge's midpoint where it covers no node and no
  // label placed before it (a greedy search over small shifts). A label with
  // no such place is crowded: shown only while its edge is hovered or one of
  // its nodes is selected.
  function placeLabels() {
    const taken = [...model.nodes.values()].map((n) => [n.x - 2, n.y - 2, n.x + L.nodeW + 2, n.y + L.nodeH + 2]);
    const free = (box) => !taken.some((t) => box[0] < t[2] && t[0] < box[2] && box[1] < t[3] && t[1] < box[3]);
    const shifts = [];
    for (const dy of [0, 16, -16, 32, -32, 48, -48, 64, -64, 80, -80, 96, -96]) {
      for (const dx of [0, 40, -40]) shifts.push([dx, dy]);
    }
    for (const edge of model.edges.values()) {
      const geo = edge.geo;
      const lines = labelLines(edge);
      const counts = lines.parts.map((p) => p.text).join('  ');
      const w = Math.max(lines.ports.length, counts.length) * 6.4 + 8;
      const chosen = shifts.find(([dx, dy]) => {
        const box = [geo.mx + dx - w / 2, geo.my + dy - 15, geo.mx + dx + w / 2, geo.my + dy + 15];
        return box[0] >= 2 && box[1] >= 2 && free(box);
      });
      edge.crowded = !chosen;
      edge.lx = geo.mx + (chosen ? chosen[0] : 0);
      edge.ly = Math.max(16, geo.my + (chosen ? chosen[1] : 0));
      edge.lw = w;
      if (chosen) taken.push([edge.lx - w / 2, edge.ly - 15, edge.lx + w / 2, edge.ly + 15]);
    }
  }

  function drawEdge(edge) {
    if (!edge.el) {
      edge.el = svg('g', { class: 'edge', 'data-source': edge.source.key, 'data-destination': edge.destination.key }, layers.edges);
      edge.titleEl = svg('title', {}, edge.el);
      edge.hit = svg('path', { class: 'hit' }, edge.el);
      edge.line = svg('path', { class: 'line' }, edge.el);
      edge.label = svg('g', { class: 'edge-label', 'data-source': edge.source.key, 'data-destination': edge.destination.key }, layers.labels);
      edge.labelTextEl = svg('text', { 'text-anchor': 'middle' }, edge.label);
      edge.labelKey = '';
      edge.el.addEventListener('mouseenter', () => edge.label.classList.add('hover'));
      edge.el.addEventListener('mouseleave', () => edge.label.classList.remove('hover'));
    }
    edge.label.classList.toggle('crowded', edge.crowded);
    const c = edge.counts;
    const cls = edgeClass(c);
    edge.el.setAttribute('class', `edge ${cls}`);
    for (const v of VERDICTS) edge.el.setAttribute(`data-${v.toLowerCase()}`, String(c[v]));
    const ports = portsText(edge);
    edge.el.setAttribute('data-ports', ports);

    const geo = edge.geo;
    edge.hit.setAttribute('d', geo.d);
    edge.line.setAttribute('d', geo.d);
    edge.line.setAttribute('marker-end', `url(#arrow-${cls})`);

    const { ports: shortPorts, parts } = labelLines(edge);
    const x = String(Math.round(edge.lx));
    const labelKey = `${shortPorts}|${parts.map((p) => p.text).join(' ')}|${x},${Math.round(edge.ly)}`;
    if (labelKey !== edge.labelKey) {
      edge.labelKey = labelKey;
      const text = edge.labelTextEl;
      while (text.firstChild) text.firstChild.remove();
      const top = svg('tspan', { x, y: String(Math.round(edge.ly - 3)) }, text);
      top.textContent = shortPorts;
      parts.forEach((part, i) => {
        const attrs = i === 0 ? { x, y: String(Math.round(edge.ly + 11)) } : { dx: '6' };
        const span = svg('tspan', { ...attrs, class: part.cls }, text);
        span.textContent = part.text;
      });
      const summary = parts.map((p) => p.text).join(', ') || 'no counted flows';
      edge.titleEl.textContent = `${edge.source.key} → ${edge.destination.key}\n${summary}\nports: ${ports || '-'}`;
    }
  }

  // Highlights the selected node's edges and neighbours, dims the rest.
  function applyFocus() {
    const key = state.selectedNode && model.nodes.has(state.selectedNode) ? state.selectedNode : null;
    const near = new Set(key ? [key] : []);
    for (const edge of model.edges.values()) {
      const touches = !key || edge.source.key === key || edge.destination.key === key;
      if (touches && key) {
        near.add(edge.source.key);
        near.add(edge.destination.key);
      }
      if (edge.el) {
        edge.el.classList.toggle('dim', !touches);
        edge.label.classList.toggle('dim', !touches);
        edge.label.classList.toggle('focus', Boolean(key) && touches);
      }
    }
    for (const node of model.nodes.values()) {
      if (!node.el) continue;
      node.el.classList.toggle('dim', Boolean(key) && !near.has(node.key));
      node.el.classList.toggle('selected', node.key === key);
    }
  }

  function drawMap() {
    if (!model.dirty) return;
    model.dirty = false;
    placeNew();
    const size = layout();
    for (const group of model.order) drawGroup(group);
    for (const node of model.nodes.values()) drawNode(node);
    for (const edge of model.edges.values()) edge.geo = edgeGeometry(edge);
    placeLabels();
    for (const edge of model.edges.values()) drawEdge(edge);
    layers.empty.style.display = model.nodes.size ? 'none' : '';
    if (model.nodes.size) {
      // Wide enough for the curves and labels beyond the last column.
      let { width, height } = size;
      for (const edge of model.edges.values()) {
        width = Math.max(width, edge.geo.right + 4, edge.lx + edge.lw / 2 + 4);
        height = Math.max(height, edge.ly + 20);
      }
      ui.map.setAttribute('width', String(Math.ceil(width)));
      ui.map.setAttribute('height', String(Math.ceil(height)));
    }
    applyFocus();
  }

  // ------------------------------------------------------------ flow table

  function endpointCell(endpoint, ip, port) {
    const ep = obj(endpoint);
    const td = el('td', 'endpoint');
    const ns = str(ep.namespace);
    const pod = str(ep.pod_name);
    let main = ns && pod ? `${ns}/${pod}` : ip && ip.includes(':') && port !== undefined ? `[${ip}]` : ip || '?';
    if (port !== undefined && port !== null && port !== '') main += `:${port}`;
    td.appendChild(el('span', 'main', main));
    const sub = [];
    if (ep.identity !== undefined) sub.push(`ID:${ep.identity}`);
    if (!(ns && pod)) {
      const d = describeEndpoint(ep, ip);
      if (d.name !== ip) sub.push(d.name);
    } else if (ip) {
      sub.push(ip);
    }
    if (sub.length) td.appendChild(el('span', 'sub', sub.join(' · ')));
    const labels = Array.isArray(ep.labels) ? ep.labels.map(str) : [];
    if (labels.length) td.title = labels.join('\n');
    return td;
  }

  function flowRow(flow) {
    const tr = el('tr', 'flow');
    const verdict = str(flow.verdict);
    tr.dataset.verdict = verdict;
    tr.dataset.type = str(flow.Type);
    state.rowFlows.set(tr, flow);

    const time = el('td', 'time', formatTime(flow.time));
    time.title = str(flow.time);
    tr.appendChild(time);

    const ip = obj(flow.IP);
    const t = transport(flow, false);
    tr.appendChild(endpointCell(flow.source, str(ip.source), t.sport));
    tr.appendChild(endpointCell(flow.destination, str(ip.destination), t.dport));

    const type = el('td', 'type');
    type.appendChild(el('span', 'main', flowType(flow)));
    const notes = [str(flow.traffic_direction).toLowerCase()];
    if (flow.is_reply === true) notes.push('reply');
    if (flow.policy_revoked === true) notes.push('revoked');
    const filter = str(obj(flow.proxy).filter);
    if (filter && !flow.l7) notes.push(`via ${filter}`);
    type.appendChild(el('span', 'sub', notes.filter(Boolean).join(' · ')));
    tr.appendChild(type);

    const verdictCell = el('td', 'verdict-cell');
    const known = VERDICTS.includes(verdict);
    verdictCell.appendChild(el('span', `verdict v-${known ? verdict : 'other'}`, verdict || '?'));
    if (flow.drop_reason_desc) verdictCell.appendChild(el('span', 'sub', str(flow.drop_reason_desc)));
    tr.appendChild(verdictCell);

    tr.appendChild(el('td', 'summary', str(flow.Summary)));
    return tr;
  }

  function flushRows() {
    if (state.paused) {
      ui.pending.textContent = state.pending.length ? `paused · ${state.pending.length} new` : 'paused';
      return 0;
    }
    ui.pending.textContent = '';
    if (!state.pending.length) return 0;
    const batch = state.pending;
    state.pending = [];
    const fragment = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i--) fragment.appendChild(flowRow(batch[i]));
    const scroller = ui.tableScroll;
    const keepPlace = scroller.scrollTop > 0;
    const before = scroller.scrollHeight;
    ui.rows.insertBefore(fragment, ui.rows.firstChild);
    if (ui.rows.children.length > TABLE_CAP) {
      const extra = document.createRange();
      extra.setStartBefore(ui.rows.children[TABLE_CAP]);
      extra.setEndAfter(ui.rows.lastChild);
      if (state.selectedRow && extra.intersectsNode(state.selectedRow)) state.selectedRow = null;
      extra.deleteContents();
    }
    if (keepPlace) scroller.scrollTop += scroller.scrollHeight - before;
    ui.noFlows.hidden = true;
    return batch.length;
  }

  function showDetail(row) {
    if (state.selectedRow) state.selectedRow.classList.remove('selected');
    state.selectedRow = row;
    if (!row) {
      ui.detail.hidden = true;
      return;
    }
    row.classList.add('selected');
    ui.detailJson.textContent = JSON.stringify(state.rowFlows.get(row), null, 2);
    ui.detail.hidden = false;
  }

  // --------------------------------------------------------------- redraws

  function scheduleDraw() {
    if (state.drawTimer) return;
    const wait = Math.max(0, DRAW_INTERVAL_MS - (performance.now() - state.lastDraw));
    state.drawTimer = setTimeout(() => requestAnimationFrame(draw), wait);
  }

  function draw() {
    state.drawTimer = 0;
    state.lastDraw = performance.now();
    drawMap();
    // Under a flood of flows, laying out a thousand fresh rows is most of
    // the page's work: the table then refreshes less often, so that it
    // takes at most about an eighth of the time.
    const start = performance.now();
    if (start >= state.tableDue || state.paused) {
      if (flushRows()) {
        void ui.tableScroll.scrollHeight; // lay the rows out now, to time it
        const cost = performance.now() - start;
        state.tableDue = start + Math.min(5000, cost * 8);
      }
    }
    if (state.pending.length && !state.paused) scheduleDraw();
    ui.flowCount.textContent = plural(state.received, 'flow');
    ui.lost.hidden = state.lost === 0;
    ui.lost.textContent = `${state.lost} events lost`;
    ui.lost.title = [...state.lostSources.entries()].map(([s, n]) => `${s}: ${n}`).join('\n');
    ui.unreadable.hidden = state.unreadable === 0;
    ui.unreadable.textContent = `${plural(state.unreadable, 'unreadable line')}`;
    document.body.dataset.flows = String(state.received);
    document.body.dataset.lost = String(state.lost);
  }

  // ---------------------------------------------------------------- stream

  function onFlow(flow) {
    const uuid = str(flow.uuid);
    if (uuid) {
      if (state.seen.has(uuid)) return; // replayed after a reconnect
      state.seen.add(uuid);
      if (state.seen.size > SEEN_CAP) state.seen.delete(state.seen.values().next().value);
    }
    state.received += 1;
    addToMap(flow);
    state.pending.push(flow);
    if (state.pending.length > TABLE_CAP) state.pending.splice(0, state.pending.length - TABLE_CAP);
  }

  function onLost(lost) {
    const info = obj(lost);
    const n = Number(info.num_events_lost) || 0;
    const source = str(info.source) || 'unknown';
    state.lost += n;
    state.lostSources.set(source, (state.lostSources.get(source) || 0) + n);
  }

  // One NDJSON line: {"flow": {...}} or {"lost_events": {...}}.
  function handleLine(line) {
    const text = line.trim();
    if (!text) return;
    let message;
    try {
      message = JSON.parse(text);
    } catch (err) {
      state.unreadable += 1;
      console.warn('porin: unreadable stream line:', text.slice(0, 200));
      return;
    }
    try {
      const m = obj(message);
      if (m.flow && typeof m.flow === 'object') onFlow(m.flow);
      else if (m.lost_events) onLost(m.lost_events);
      else if (m.verdict && m.IP) onFlow(m); // a bare flow
      // Anything else is a message kind this page does not know: skip it.
    } catch (err) {
      console.error('porin: cannot show a flow:', err, text.slice(0, 200));
    }
    scheduleDraw();
  }

  function setStatus(name, text) {
    ui.status.dataset.state = name;
    ui.statusText.textContent = text;
    document.body.dataset.stream = name;
  }

  function streamUrl(params) {
    const query = new URLSearchParams([['follow', 'true'], ...params]);
    return `/v1/flows?${query}`;
  }

  function stopStream() {
    state.gen += 1;
    clearTimeout(state.retryTimer);
    if (state.abort) state.abort.abort();
    state.abort = null;
  }

  function retryLater(gen, reason) {
    if (gen !== state.gen) return;
    const delay = state.backoff;
    state.backoff = Math.min(state.backoff * 2, BACKOFF_MAX_MS);
    setStatus('reconnecting', `${reason}; retrying in ${Math.round(delay / 1000)} s`);
    state.retryTimer = setTimeout(connect, delay);
  }

  async function connect() {
    stopStream();
    const gen = state.gen;
    const abort = new AbortController();
    state.abort = abort;
    setStatus(document.body.dataset.stream === 'reconnecting' ? 'reconnecting' : 'connecting', 'connecting…');

    let response;
    try {
      response = await fetch(streamUrl(state.params), {
        signal: abort.signal,
        cache: 'no-store',
        headers: { Accept: 'application/x-ndjson' },
      });
    } catch (err) {
      retryLater(gen, `cannot reach the agent (${err.message})`);
      return;
    }
    if (gen !== state.gen) return;
    if (response.status === 400) {
      const body = await response.text().catch(() => '');
      if (gen !== state.gen) return;
      ui.filterError.textContent = `HTTP 400 from the agent: ${body.trim() || 'the filters were rejected'}`;
      ui.filterError.hidden = false;
      setStatus('error', 'filters rejected');
      return;
    }
    if (!response.ok || !response.body) {
      const body = await response.text().catch(() => '');
      retryLater(gen, `HTTP ${response.status}${body.trim() ? `: ${shorten(body.trim(), 120)}` : ''}`);
      return;
    }
    ui.filterError.hidden = true;
    setStatus('live', 'live');

    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (gen !== state.gen) {
          reader.cancel().catch(() => {});
          return;
        }
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let start = 0;
        let newline;
        while ((newline = buffer.indexOf('\n', start)) !== -1) {
          handleLine(buffer.slice(start, newline));
          start = newline + 1;
        }
        if (start) {
          buffer = buffer.slice(start);
          state.backoff = BACKOFF_MIN_MS; // this connection works
        }
      }
      buffer += decoder.decode();
      handleLine(buffer);
    } catch (err) {
      retryLater(gen, `the stream broke (${err.message})`);
      return;
    }
    retryLater(gen, 'the agent ended the stream');
  }

  // --------------------------------------------------------------- filters

  function formParams() {
    const form = ui.form;
    const params = new URLSearchParams();
    for (const filter of TEXT_FILTERS) {
      const raw = form.elements[filter.name].value.trim();
      if (!raw) continue;
      const values = filter.list ? raw.split(',').map((v) => v.trim()).filter(Boolean) : [raw];
      for (const value of values) params.append(filter.name, value);
    }
    for (const box of form.querySelectorAll('input[name="verdict"]:checked')) params.append('verdict', box.value);
    return params;
  }

  function fillForm(params) {
    const form = ui.form;
    form.reset();
    for (const filter of TEXT_FILTERS) {
      const values = params.getAll(filter.name);
      if (values.length) form.elements[filter.name].value = values.join(filter.list ? ', ' : '');
    }
    const verdicts = new Set(params.getAll('verdict').map((v) => v.toUpperCase()));
    for (const box of form.querySelectorAll('input[name="verdict"]')) box.checked = verdicts.has(box.value);
  }

  // The page's #fragment holds the filters, so a view can be bookmarked.
  function hashParams() {
    return new URLSearchParams(location.hash.replace(/^#/, ''));
  }

  function resetView() {
    state.seen.clear();
    state.received = 0;
    state.lost = 0;
    state.lostSources.clear();
    state.unreadable = 0;
    state.pending = [];
    state.tableDue = 0;
    state.selectedNode = null;
    showDetail(null);
    ui.rows.replaceChildren();
    ui.noFlows.hidden = false;
    initMap();
    draw();
  }

  function start(params) {
    state.params = params;
    ui.requestUrl.textContent = `GET ${streamUrl(params)}`;
    ui.filterError.hidden = true;
    state.backoff = BACKOFF_MIN_MS;
    resetView();
    connect();
  }

  function applyForm() {
    const params = formParams();
    // The fragment leaves out `last` at its default, so plain views stay plain.
    const shown = new URLSearchParams(params);
    if (shown.get('last') === ui.form.elements.last.defaultValue) shown.delete('last');
    const hash = shown.toString();
    if (hash !== location.hash.replace(/^#/, '')) history.replaceState(null, '', hash ? `#${hash}` : location.pathname);
    start(params);
  }

  // ------------------------------------------------------------------ wiring

  ui.form.addEventListener('submit', (event) => {
    event.preventDefault();
    applyForm();
  });
  ui.clear.addEventListener('click', () => {
    ui.form.reset();
    applyForm();
  });
  ui.pause.addEventListener('click', () => {
    state.paused = !state.paused;
    ui.pause.setAttribute('aria-pressed', String(state.paused));
    ui.pause.textContent = state.paused ? 'Resume table' : 'Pause table';
    flushRows();
  });
  ui.rows.addEventListener('click', (event) => {
    const row = event.target.closest('tr.flow');
    if (row) showDetail(row === state.selectedRow ? null : row);
  });
  ui.detailClose.addEventListener('click', () => showDetail(null));
  ui.map.addEventListener('click', () => {
    state.selectedNode = null;
    applyFocus();
  });
  window.addEventListener('hashchange', () => {
    fillForm(hashParams());
    const params = formParams();
    if (params.toString() === state.params.toString()) return;
    start(params);
  });
  let resizeTimer = 0;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      model.dirty = true;
      scheduleDraw();
    }, 150);
  });

  const initial = hashParams();
  if ([...initial.keys()].length) fillForm(initial);
  start(formParams());
})();
