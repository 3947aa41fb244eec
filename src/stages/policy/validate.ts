/**
 * `gatehouse check` for policies and zones: every policy file loads and parses, and no
 * site routes into a zone it may not reach. Once a config uses zones (any upstream has a
 * `zone` or any site a `zones` list), every upstream must declare its zone and every site
 * the zones it may reach, so a route added later cannot silently bypass the segmentation.
 */
import { resolve } from 'node:path';
import type { PartialConfig } from '../../config/load.js';
import { checkPolicyFiles } from './policy-set.js';

export function validatePolicyConfig(config: PartialConfig, dir: string, err: (path: string, message: string) => void): void {
  const sites = config.sites;
  const zonesUsed = sites.some((s) => s !== undefined && (s.zones !== undefined || s.upstream?.zone !== undefined));
  sites.forEach((site, si) => {
    if (site === undefined) return;
    const sp = `sites[${si}]`;
    if (site.policy) {
      const { files, shadow_files: shadowFiles } = site.policy;
      if (files === undefined && shadowFiles === undefined) err(`${sp}.policy`, 'a policy needs `files` (enforced) or `shadow_files` (evaluated only), or both');
      for (const [key, list] of [['files', files], ['shadow_files', shadowFiles]] as const) {
        if (list === undefined) continue;
        const problem = checkPolicyFiles(list.map((f) => resolve(dir, f)));
        if (problem) err(`${sp}.policy.${key}`, problem.message);
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
