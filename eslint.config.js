import js from "@eslint/js";
import tseslint from "typescript-eslint";
import importX from "eslint-plugin-import-x";
import { createTypeScriptImportResolver } from "eslint-import-resolver-typescript";
import prettier from "eslint-config-prettier";

// The packages and what each may import (proto ← transport, engine ← worker ← coordinator ← test ← bench).
// A package reaches another only by its name and public exports; a relative path may not leave it.
const MAY_IMPORT = {
  proto: [],
  transport: ["proto"],
  engine: ["proto"],
  worker: ["proto", "transport", "engine"],
  coordinator: ["proto", "transport", "engine", "worker"],
  test: ["proto", "transport", "engine", "worker", "coordinator"],
  bench: ["proto", "transport", "engine", "worker", "coordinator", "test"],
};
const packageRules = Object.entries(MAY_IMPORT).map(([pkg, allowed]) => {
  const forbidden = Object.keys(MAY_IMPORT).filter((p) => p !== pkg && !allowed.includes(p));
  return {
    files: [`${pkg}/**/*.ts`],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            ...(forbidden.length
              ? [
                  {
                    group: forbidden.map((p) => `@mergeloom/${p}`).flatMap((g) => [g, `${g}/*`]),
                    message: `${pkg} may import only ${allowed.length ? allowed.join(", ") : "no other package"} (see ARCHITECTURE.md)`,
                  },
                ]
              : []),
            { group: ["@mergeloom/*/dist/*", "@mergeloom/*/*/*"], message: "import a package's public entry points only (its package.json exports)" },
          ],
        },
      ],
    },
  };
});

export default tseslint.config(
  { ignores: ["**/dist/**", "node_modules/**", "**/node_modules/**", "deploy/**", "engine/kernels/assembly/**", ".venv-test/**", ".bench/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    plugins: { "import-x": importX },
    settings: {
      "import-x/resolver-next": [createTypeScriptImportResolver({ project: ["*/tsconfig.json"], noWarnOnMultipleProjects: true })],
    },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "no-constant-condition": ["error", { checkLoops: false }],
      "import-x/no-relative-packages": "error",
    },
  },
  ...packageRules,
  { files: ["**/*.mjs", "**/*.js"], languageOptions: { globals: { process: "readonly", console: "readonly" } } },
  // Formatting is Prettier's (run by `npm run lint`); turn off the style rules it owns.
  prettier,
);
