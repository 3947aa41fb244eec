/**
 * `gatehouse check` for policies and zones: every policy file loads and parses, and no
 * site routes into a zone it may not reach. Once a config uses zones (any upstream has a
 * `zone` or any site a `zones` list), every upstream must declare its zone and every site
 * the zones it may reach, so a route added later cannot silently bypass the segmentation.
 */
import { resolve } from 'node:path';
import type { PartialConfig } from '../../config/load.js';
import { checkPolicyFiles } from './policy-set.js';
import { formatPolicyProblem } from './schema.js';

export function validatePolicyConfig(config: PartialConfig, dir: string, err: (path: string, message: string) => void): void {
  const sites = config.sites;
  const zonesUsed = sites.some((s) => s !== undefined && (s.zones !== undefined || s.upstream?.zone !== undefined));
  sites.forEach((site, si) => {
    if (site === undefined) return;
    const sp = `sites[${si}]`;
    if (site.policy) {
      const { files, shadow_files: shadowFiles } = site.policy;
      if (files === undefined && shadowFiles === undefined) err(`${sp}.policy`, 'a policy needs `files` (enforced) or `shadow_files` (evaluated only), or both');
      for (const [i, f] of Object.keys(site.policy.body_field_types ?? {}).entries()) {
        if (!site.policy.body_fields.includes(f)) err(`${sp}.policy.body_field_types`, `${JSON.stringify(f)} is not in body_fields (entry ${i + 1})`);
      }
      for (const [key, list] of [['files', files], ['shadow_files', shadowFiles]] as const) {
        if (list === undefined) continue;
        const problem = checkPolicyFiles(list.map((f) => resolve(dir, f)), site.policy);
        // Each schema problem on its own line, with file, line and column.
        if (problem && problem.problems.length > 0) for (const p of problem.problems) err(`${sp}.policy.${key}`, formatPolicyProblem(p));
        else if (problem) err(`${sp}.policy.${key}`, problem.message);
      }
      if (site.policy.body_fields.length > 0 && site.policy.max_body_bytes > site.max_body_bytes) {
        err(`${sp}.policy.max_body_bytes`, `must not be larger than the site's max_body_bytes (${site.max_body_bytes})`);
      }
    }
    if (!zonesUsed) return;
    const zone = site.upstream?.zone;
    if (zone === undefined) err(`${sp}.upstream.zone`, 'this config uses zones: every upstream declares the zone it is in');
    if (site.zones === undefined) err(`${sp}.zones`, 'this config uses zones: every site lists the zones it may reach');
    else if (zone !== undefined && !site.zones.includes(zone)) {
      err(`${sp}.upstream.zone`, `site ${JSON.stringify(site.id)} may reach zones [${site.zones.join(', ')}] but its upstream is in zone ${JSON.stringify(zone)}`);
    }
  });
}
