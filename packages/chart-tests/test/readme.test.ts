import assert from 'node:assert/strict';
import { parse } from 'yaml';
import {
  documentedValues,
  generateReadme,
  readChartFiles,
  renderValuesTable,
  replaceBetween,
  undocumentedLeaves,
} from '../scripts/chart-readme.ts';

describe('chart README', () => {
  const files = readChartFiles();

  it('documents every value in values.yaml with a "# --" comment', () => {
    const docs = documentedValues(files.valuesYaml);
    assert.ok(docs.length > 50, `only ${docs.length} documented values`);
    assert.deepEqual(undocumentedLeaves(parse(files.valuesYaml), docs), []);
    for (const doc of docs) assert.ok(doc.description.length > 3, `${doc.path} has an empty description`);
  });

  it('is in sync with values.yaml and values.schema.json (run `pnpm --filter @afterlife/chart-tests run readme`)', () => {
    assert.equal(files.readme, generateReadme(files));
  });

  it('detects a stale table', () => {
    const changed = files.valuesYaml.replace('replicas: 2', 'replicas: 5');
    assert.notEqual(generateReadme({ ...files, valuesYaml: changed }), files.readme);
  });

  it('renders type and default from the schema and values', () => {
    const table = renderValuesTable('# -- How many.\nreplicas: 2\n# -- Policy.\n# continued here.\nmode: Fail\n', {
      type: 'object',
      properties: { replicas: { type: 'integer' }, mode: { enum: ['Fail', 'Ignore'] } },
    });
    assert.match(table, /\| `replicas` \| integer \| `2` \| How many\. \|/);
    assert.match(table, /\| `mode` \| "Fail" \\\| "Ignore" \| `"Fail"` \| Policy\. continued here\. \|/);
  });

  it('refuses a README without the markers', () => {
    assert.throws(() => replaceBetween('no markers', 'values', 'x'), /lacks the markers/);
  });

  it('reports values without a comment', () => {
    const yaml = '# -- Documented.\na: 1\nb:\n  c: 2\n';
    assert.deepEqual(undocumentedLeaves(parse(yaml), documentedValues(yaml)), ['b.c']);
  });
});
