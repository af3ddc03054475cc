/// The console's stylesheet and script, served from the binary (no build step, no CDN). The
/// colours meet WCAG AA contrast; focus is always visible; the script only adds conveniences
/// (select all), and every page works without it.
enum ConsoleAssets {
    static let css = """
    :root { color-scheme: light; --fg: #1a1a1a; --muted: #4a4a4a; --bg: #ffffff; --line: #c8c8c8; --link: #0b57d0; --bad: #a50e0e; --good: #0d652d; --accent: #0b57d0; }
    * { box-sizing: border-box; }
    body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
    a { color: var(--link); }
    a:focus, button:focus, input:focus, select:focus, textarea:focus { outline: 3px solid #1d4ed8; outline-offset: 2px; }
    .skip { position: absolute; left: -999px; top: 0; background: #fff; padding: .5rem; }
    .skip:focus { left: .5rem; }
    header { display: flex; flex-wrap: wrap; gap: 1rem; align-items: center; padding: .75rem 1.5rem; border-bottom: 1px solid var(--line); background: #f5f7fa; }
    .brand { font-weight: 700; margin: 0; }
    nav ul { list-style: none; display: flex; flex-wrap: wrap; gap: 1rem; margin: 0; padding: 0; }
    nav a[aria-current="page"] { font-weight: 700; text-decoration: underline 3px; }
    .who { margin-left: auto; display: flex; gap: .75rem; align-items: center; color: var(--muted); }
    main { padding: 1rem 1.5rem 3rem; max-width: 1200px; }
    .login { max-width: 28rem; margin: 3rem auto; }
    h1 { font-size: 1.6rem; margin-top: .5rem; }
    h2 { font-size: 1.2rem; }
    table { border-collapse: collapse; margin: .5rem 0 1.5rem; }
    table.wide { width: 100%; }
    th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
    thead th { border-bottom: 2px solid var(--fg); }
    .num { text-align: right; font-variant-numeric: tabular-nums; }
    .cards { display: flex; flex-wrap: wrap; gap: 1rem; margin-bottom: 1rem; }
    .cards > section { flex: 1 1 16rem; }
    .card { border: 1px solid var(--line); border-radius: 6px; padding: .25rem 1rem; }
    .big { font-size: 1.3rem; font-weight: 600; }
    .good { color: var(--good); }
    .bad, .error, .error-text { color: var(--bad); }
    .error { border-left: 4px solid var(--bad); padding-left: .75rem; }
    label { display: block; font-weight: 600; margin-bottom: .2rem; }
    .filters { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-end; }
    .filters p { margin: 0; }
    input, select, textarea { font: inherit; padding: .35rem .5rem; border: 1px solid #767676; border-radius: 4px; color: var(--fg); background: #fff; }
    textarea { width: 100%; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
    button { font: inherit; padding: .4rem .9rem; border-radius: 4px; border: 1px solid #0b57d0; background: #fff; color: #0b57d0; cursor: pointer; }
    button.primary { background: #0b57d0; color: #fff; }
    button.danger { border-color: var(--bad); color: #fff; background: var(--bad); }
    button.link { border: none; background: none; color: var(--link); text-decoration: underline; padding: 0; }
    form.inline { display: inline-block; margin-right: .5rem; }
    pre.value { background: #f5f7fa; border: 1px solid var(--line); padding: .75rem; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
    dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
    dl.facts dt { font-weight: 600; }
    dl.facts dd { margin: 0; }
    .hint { color: var(--muted); }
    .visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
    """

    static let js = """
    // Progressive conveniences only: every page works without this script.
    document.addEventListener("DOMContentLoaded", () => {
      for (const button of document.querySelectorAll("button[data-select-all]")) {
        button.addEventListener("click", () => {
          const boxes = document.querySelectorAll(`input[type=checkbox][name="${button.dataset.selectAll}"]`);
          const check = Array.from(boxes).some((b) => !b.checked);
          for (const b of boxes) b.checked = check;
        });
      }
    });
    """
}
