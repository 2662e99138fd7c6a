import { describe, expect, it } from "vitest";

interface HighlightModule {
  highlightLine(text: string, language: string | undefined): unknown;
  languageOf(path: string): string | undefined;
}
// Loaded by paths the server's type check does not follow: highlight.js's and React's types
// bring in globals (the DOM's, React's SVGElement) that the server's code and the browser
// tests' must not see. web/tsconfig.json checks the module itself.
const load = (path: string): Promise<unknown> => import(/* @vite-ignore */ path);
const { highlightLine, languageOf } = (await load("./src/pages/agents/diff-highlight.js")) as HighlightModule;
const { createElement } = (await load("react")) as {
  createElement(type: string, props: null, child: unknown): unknown;
};
const { renderToStaticMarkup } = (await load("react-dom/server")) as {
  renderToStaticMarkup(element: unknown): string;
};

const render = (text: string, language: string | undefined) =>
  renderToStaticMarkup(createElement("code", null, highlightLine(text, language)));

describe("the diff's syntax highlighting", () => {
  it("picks the language by the file's name, and none for a name it does not know", () => {
    expect(languageOf("src/app.tsx")).toBe("typescript");
    expect(languageOf("deploy/values.YAML")).toBe("yaml");
    expect(languageOf("docker/Dockerfile")).toBe("dockerfile");
    expect(languageOf("notes.txt")).toBeUndefined();
    expect(languageOf(".bashrc")).toBeUndefined();
  });

  it("marks keywords and strings with highlight.js's classes", () => {
    const html = render('const greeting = "hello";', "typescript");
    expect(html).toContain('<span class="hljs-keyword">const</span>');
    expect(html).toContain('<span class="hljs-string">&quot;hello&quot;</span>');
  });

  it("shows markup in the code as text, never as markup", () => {
    const line = '<img src=x onerror="alert(1)"><script>alert(2)</script>';
    for (const language of ["xml", "javascript", undefined]) {
      const html = render(line, language);
      expect(html).not.toMatch(/<img|<script/);
      expect(html.replace(/<[^>]+>/g, "")).toBe(
        line
          .replaceAll("&", "&amp;")
          .replaceAll("<", "&lt;")
          .replaceAll(">", "&gt;")
          .replaceAll('"', "&quot;"),
      );
    }
  });
});
