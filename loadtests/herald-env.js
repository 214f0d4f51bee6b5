// What every Herald k6 script reads from its environment: where the api and the
// Kubernetes API are, the credentials, the tenant and the namespace. Imported by
// smoke.js and capacity.js; the platform's k6 ConfigMap carries it next to them.

/** A secret from NAME, else from the file NAME_FILE (or defaultFile) names, else ''. */
function secret(name, defaultFile) {
  if (__ENV[name]) return __ENV[name];
  const file = __ENV[name + '_FILE'] || defaultFile;
  if (!file) return '';
  try {
    return open(file).trim();
  } catch (e) {
    return '';
  }
}

export const API = (__ENV.HERALD_API_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
export const KUBE = (__ENV.HERALD_KUBE_API || 'https://kubernetes.default.svc').replace(/\/$/, '');
export const KUBE_TOKEN = secret('HERALD_KUBE_TOKEN', '/var/run/secrets/kubernetes.io/serviceaccount/token');
export const ADMIN_TOKEN = secret('HERALD_ADMIN_TOKEN');
export const GIVEN_API_KEY = secret('HERALD_API_KEY');
export const TENANT = __ENV.HERALD_TENANT || 'k6-synthetic';
export const NS = __ENV.HERALD_NAMESPACE || 'herald-loadtest';
