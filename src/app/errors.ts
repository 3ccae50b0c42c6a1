/** The app could not be loaded or is not something tunicorn can serve. Carries a one-line reason. */
export class AppLoadError extends Error {
  override name = 'AppLoadError';
  constructor(
    message: string,
    /** The full detail (stack with file and line) for the error log. */
    readonly detail: string = '',
  ) {
    super(message);
  }
}
