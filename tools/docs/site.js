// The offline documentation's behaviour (tools/make_docs.py copies this file to _static/site.js):
// typeset the maths with the local KaTeX copy, and a client-side search over _static/search_index.js.
// Nothing here reaches the network: every file is loaded relative to the page, which also works from file://.
(function () {
  'use strict';
  var root = document.documentElement.getAttribute('data-root') || '';

  function typeset() {
    if (!window.renderMathInElement) return;
    window.renderMathInElement(document.querySelector('main') || document.body, {
      delimiters: [
        {left: '$$', right: '$$', display: true},
        {left: '\\[', right: '\\]', display: true},
        {left: '$', right: '$', display: false},
        {left: '\\(', right: '\\)', display: false}
      ],
      ignoredTags: ['script', 'noscript', 'style', 'textarea', 'pre', 'code', 'option'],
      throwOnError: false
    });
    document.documentElement.setAttribute('data-math', 'done');
  }

  // ---- search -------------------------------------------------------------------------------------------------
  var index = null, waiting = [];
  function loadIndex(then) {
    if (index) return then(index);
    waiting.push(then);
    if (waiting.length > 1) return;
    var s = document.createElement('script');          // a script, not fetch(): fetch is refused under file://
    s.src = root + '_static/search_index.js';
    s.onload = function () { index = window.TORCHEBM_NB_SEARCH || []; waiting.splice(0).forEach(function (f) { f(index); }); };
    document.head.appendChild(s);
  }

  function tokens(text) { return text.toLowerCase().split(/[^a-z0-9_.]+/).filter(Boolean); }

  // Score every page and every heading against the query; each token must occur somewhere in the entry.
  function search(entries, query) {
    var words = tokens(query), hits = [];
    if (!words.length) return hits;
    entries.forEach(function (page) {
      var title = page.t.toLowerCase(), text = page.x;
      (page.h || []).forEach(function (h) {
        var name = h[0].toLowerCase(), score = 0, all = true;
        words.forEach(function (w) {
          if (title.indexOf(w) >= 0) score += 3;                  // the page is about it
          if (name === w) score += 40;
          else if (name.indexOf(w) === 0) score += 20;
          else if (name.indexOf(w) >= 0) score += 10;
          else if (title.indexOf(w) < 0) all = false;
        });
        if (/^_|_$/.test(name)) score -= 5;                          // internal names after public ones
        if (name.replace(/[^a-z0-9]/g, '') === words.join('').replace(/[^a-z0-9]/g, '')) score += 60;   // the whole name
        if (all) hits.push({score: score + (h[2] ? 5 : 0), url: page.u + '#' + h[1], label: h[0], page: page.t});
      });
      var score = 0, all = true;
      words.forEach(function (w) {
        if (title.indexOf(w) >= 0) score += 8;
        else if (text.indexOf(w) >= 0) score += 1;
        else all = false;
      });
      if (all) hits.push({score: score, url: page.u, label: page.t, page: page.s});
    });
    hits.sort(function (a, b) { return b.score - a.score || a.url.length - b.url.length || a.label.localeCompare(b.label); });
    return hits.slice(0, 12);
  }

  function setupSearch() {
    var box = document.getElementById('search-box'), list = document.getElementById('search-results');
    if (!box || !list) return;
    function show() {
      var q = box.value;
      loadIndex(function (entries) {
        if (box.value !== q) return;
        var hits = search(entries, q);
        list.innerHTML = '';
        hits.forEach(function (hit) {
          var li = document.createElement('li'), a = document.createElement('a');
          a.href = root + hit.url;
          a.textContent = hit.label;
          var where = document.createElement('span');
          where.className = 'search-where';
          where.textContent = hit.page;
          a.appendChild(where);
          li.appendChild(a);
          list.appendChild(li);
        });
        if (q && !hits.length) { var li = document.createElement('li'); li.className = 'search-none'; li.textContent = 'no match'; list.appendChild(li); }
        list.hidden = !q;
      });
    }
    box.addEventListener('input', show);
    box.addEventListener('focus', function () { loadIndex(function () {}); });
    box.addEventListener('keydown', function (e) {
      if (e.key === 'Enter') { var first = list.querySelector('a'); if (first) window.location.href = first.href; }
      if (e.key === 'Escape') { box.value = ''; list.hidden = true; }
    });
    document.addEventListener('click', function (e) { if (!list.contains(e.target) && e.target !== box) list.hidden = true; });
  }

  document.addEventListener('DOMContentLoaded', function () { typeset(); setupSearch(); });
})();
