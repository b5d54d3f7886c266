// What the browser test asserts on, read from the rendered notebook: one record per cell, as a JSON string.
// Colours are returned as computed CSS strings with the backgrounds behind them; the Python side does the maths.

const ERROR_OUTPUTS = '[data-mime-type="application/vnd.jupyter.error"], .jp-mod-error';
const PICTURES = '.gradmagic img, .gradmagic svg, .jp-RenderedImage img';
const SCROLL_FRAME = '.gradmagic-scroll';
const TABLES = 'table.gradmagic, table.gradmagic-table';  // the report's class, old and new

function backgroundLayers(element) {
  // background colours from the element outwards, down to the first opaque one
  const layers = [];
  for (let node = element; node && node.nodeType === 1; node = node.parentElement) {
    const colour = getComputedStyle(node).backgroundColor;
    const alpha = colour.startsWith('rgba') ? parseFloat(colour.split(',')[3]) : 1;
    if (alpha > 0) layers.push(colour);
    if (alpha >= 1) break;
  }
  return layers;
}

function ownText(element) {
  return [...element.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent).join('').trim();
}

function describeText(element) {
  const style = getComputedStyle(element);
  return {tag: element.tagName.toLowerCase(), text: ownText(element).slice(0, 80), colour: style.color,
          backgrounds: backgroundLayers(element), fontPx: parseFloat(style.fontSize)};
}

function describePicture(picture) {
  const box = picture.getBoundingClientRect();
  const isImg = picture.tagName.toLowerCase() === 'img';
  return {tag: picture.tagName.toLowerCase(), naturalWidth: isImg ? picture.naturalWidth : null,
          naturalHeight: isImg ? picture.naturalHeight : null, widthAttribute: picture.getAttribute('width'),
          minTextPt: picture.getAttribute('data-min-text-pt'), shownWidth: box.width, shownHeight: box.height,
          alt: picture.getAttribute('alt'), inScrollFrame: !!picture.closest(SCROLL_FRAME)};
}

function widestCulprit(output) {
  // the element reaching furthest right past the output's edge, scroll frames and their insides left out
  const right = output.getBoundingClientRect().left + output.clientWidth;
  let worst = null;
  for (const element of output.querySelectorAll('*')) {
    if (element.closest(SCROLL_FRAME)) continue;
    const reach = element.getBoundingClientRect().right - right;
    if (reach > 1 && (!worst || reach > worst.reach)) {
      worst = {reach: Math.round(reach), tag: element.tagName.toLowerCase(), cls: element.className.baseVal ?? element.className,
               width: Math.round(element.getBoundingClientRect().width)};
    }
  }
  return worst;
}

function describeOutput(output) {
  const gradmagic = output.querySelector('.gradmagic');
  const warnings = [...output.querySelectorAll('*')].filter(
    e => ownText(e).includes('⚠') || /warn/i.test(e.className.baseVal ?? e.className));
  const texts = gradmagic ? [gradmagic, ...gradmagic.querySelectorAll('*')].filter(e => ownText(e)) : [];
  return {
    mime: output.getAttribute('data-mime-type'),
    text: output.textContent.slice(0, 400),
    isError: output.matches(ERROR_OUTPUTS) || !!output.querySelector(ERROR_OUTPUTS),
    scrollWidth: output.scrollWidth, clientWidth: output.clientWidth, culprit: widestCulprit(output),
    gradmagic: !!gradmagic,
    pictures: [...output.querySelectorAll(PICTURES)].filter(p => !p.parentElement.closest('svg')).map(describePicture),
    tableRows: [...output.querySelectorAll(TABLES)].map(t => t.querySelectorAll('tbody tr').length),
    warnings: warnings.map(describeText),
    texts: texts.map(describeText),
  };
}

function modelErrors(index) {
  // error outputs as JupyterLab's own model holds them (the page shows them as stderr text)
  const notebook = window.jupyterapp && window.jupyterapp.shell.currentWidget && window.jupyterapp.shell.currentWidget.content;
  const model = notebook && notebook.widgets && notebook.widgets[index] && notebook.widgets[index].model;
  if (!model || !model.outputs) return [];
  return model.outputs.toJSON().filter(o => o.output_type === 'error').map(o => `${o.ename}: ${o.evalue}`);
}

const cells = [...document.querySelectorAll('.jp-Notebook .jp-Cell')].map((cell, index) => ({
  index,
  errors: modelErrors(index),
  code: cell.classList.contains('jp-CodeCell'),
  prompt: (cell.querySelector('.jp-InputPrompt') || {}).textContent || '',
  outputs: [...cell.querySelectorAll('.jp-OutputArea-output')].map(describeOutput),
}));
return JSON.stringify({theme: document.body.dataset.jpThemeName, cells});
